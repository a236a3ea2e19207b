#include "navarch/cel/interpreter.h"

#include <cassert>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "navarch/cel/builtins.h"

namespace navarch::cel::internal {
namespace {

absl::Status Error(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

std::string KeyText(const Value& key) {
  return key.is_string() ? std::string(key.string_value()) : key.DebugString();
}

// langdef.md "Field Selection": on a map, e.f is e["f"].
absl::Status Select(const Result& operand, const std::string& field,
                    Result* out) {
  const Value& v = operand.value();
  if (!v.is_map()) {
    return Error(absl::StrCat("type '", v.type_name(),
                              "' does not support field selection"));
  }
  const Value* found = v.map_value().Find(field);
  if (found == nullptr) return Error(absl::StrCat("no such key: ", field));
  out->SetPart(operand, *found);
  return absl::OkStatus();
}

absl::Status Has(const Value& v, const std::string& field, Result* out) {
  if (!v.is_map()) {
    return Error(absl::StrCat("type '", v.type_name(),
                              "' does not support field selection"));
  }
  out->Set(Value::Bool(v.map_value().Find(field) != nullptr));
  return absl::OkStatus();
}

absl::Status Index(const Result& container, const Value& index, Result* out) {
  const Value& c = container.value();
  if (c.is_list()) {
    const auto& list = c.list_value();
    int64_t i;
    if (index.is_int()) {
      i = index.int_value();
    } else if (index.is_uint()) {
      i = index.uint_value() > static_cast<uint64_t>(INT64_MAX)
              ? -1
              : static_cast<int64_t>(index.uint_value());
    } else if (index.is_double()) {
      // An integral double indexes too (conformance lists.textproto).
      const double d = index.double_value();
      if (!(d == std::trunc(d)) || std::abs(d) > 9.0e18) {
        return Error(absl::StrCat("invalid list index: ", index.DebugString()));
      }
      i = static_cast<int64_t>(d);
    } else {
      return NoSuchOverload("_[_]", {&c, &index});
    }
    if (i < 0 || static_cast<uint64_t>(i) >= list.size()) {
      return Error(absl::StrCat("index out of range: ", index.DebugString()));
    }
    out->SetPart(container, list[static_cast<size_t>(i)]);
    return absl::OkStatus();
  }
  if (c.is_map()) {
    switch (index.kind()) {
      case Value::Kind::kBool:
      case Value::Kind::kInt:
      case Value::Kind::kUint:
      case Value::Kind::kDouble:
      case Value::Kind::kString:
        break;
      default:
        return Error(absl::StrCat("unsupported key type: ", index.type_name()));
    }
    const Value* found = c.map_value().Find(index);
    if (found == nullptr) {
      return Error(absl::StrCat("no such key: ", KeyText(index)));
    }
    out->SetPart(container, *found);
    return absl::OkStatus();
  }
  return NoSuchOverload("_[_]", {&c, &index});
}

// `a && b && ...` (langdef.md "Logical Operators"): false if any operand is
// false, whatever the others do (errors included); otherwise the first
// error, or a non-bool operand's "no such overload"; otherwise true. `||`
// is the mirror image. Stops at the first deciding operand.
absl::Status Logical(const Expr& e, const Frame& frame, bool is_and,
                     Result* out) {
  const bool decisive = !is_and;  // false decides &&, true decides ||
  absl::Status first_error;
  for (const auto& arg : e.args) {
    Result r;
    absl::Status status = Eval(*arg, frame, &r);
    if (status.ok() && r.value().is_bool()) {
      if (r.value().bool_value() == decisive) {
        out->Set(Value::Bool(decisive));
        return absl::OkStatus();
      }
      continue;
    }
    if (first_error.ok()) {
      first_error = status.ok()
                        ? NoSuchOverload(is_and ? "_&&_" : "_||_", {&r.value()})
                        : std::move(status);
    }
  }
  if (!first_error.ok()) return first_error;
  out->Set(Value::Bool(!decisive));
  return absl::OkStatus();
}

absl::Status NotBool(const char* macro, const Value& v) {
  return NoSuchOverload(macro, {&v});
}

// The macros of langdef.md "Macros" over list elements or map keys.
absl::Status Comprehension(const Expr& e, const Frame& frame, Result* out) {
  Result range;
  absl::Status status = Eval(*e.args[0], frame, &range);
  if (!status.ok()) return status;
  const Value& r = range.value();
  // Map keys as a list of pointers, so both kinds iterate alike.
  absl::InlinedVector<const Value*, 16> items;
  if (r.is_list()) {
    items.reserve(r.list_value().size());
    for (const Value& v : r.list_value()) items.push_back(&v);
  } else if (r.is_map()) {
    items.reserve(r.map_value().size());
    for (const auto& entry : r.map_value()) items.push_back(&entry.first);
  } else {
    return Error(
        absl::StrCat("no such overload: cannot iterate over ", r.type_name()));
  }

  const Value** slot = &frame.slots[e.slot];
  const Expr& body = *e.args[1];
  switch (e.macro) {
    case Macro::kAll:
    case Macro::kExists: {
      // Folds the predicates with && (all) or || (exists): a deciding
      // result wins over errors on other elements.
      const bool decisive = e.macro == Macro::kExists;
      const char* name = decisive ? "exists" : "all";
      absl::Status first_error;
      for (const Value* item : items) {
        *slot = item;
        Result p;
        status = Eval(body, frame, &p);
        if (status.ok() && p.value().is_bool()) {
          if (p.value().bool_value() == decisive) {
            out->Set(Value::Bool(decisive));
            return absl::OkStatus();
          }
          continue;
        }
        if (first_error.ok()) {
          first_error =
              status.ok() ? NotBool(name, p.value()) : std::move(status);
        }
      }
      if (!first_error.ok()) return first_error;
      out->Set(Value::Bool(!decisive));
      return absl::OkStatus();
    }
    case Macro::kExistsOne: {
      // Strict: any error makes the result an error.
      int64_t count = 0;
      for (const Value* item : items) {
        *slot = item;
        Result p;
        status = Eval(body, frame, &p);
        if (!status.ok()) return status;
        if (!p.value().is_bool()) return NotBool("exists_one", p.value());
        if (p.value().bool_value()) ++count;
      }
      out->Set(Value::Bool(count == 1));
      return absl::OkStatus();
    }
    case Macro::kMap:
    case Macro::kMapFilter:
    case Macro::kFilter: {
      std::vector<Value> result;
      result.reserve(e.macro == Macro::kMap ? items.size() : 0);
      for (const Value* item : items) {
        *slot = item;
        if (e.macro != Macro::kMap) {
          Result p;
          status = Eval(body, frame, &p);
          if (!status.ok()) return status;
          if (!p.value().is_bool()) {
            return NotBool(e.macro == Macro::kFilter ? "filter" : "map",
                           p.value());
          }
          if (!p.value().bool_value()) continue;
          if (e.macro == Macro::kFilter) {
            result.push_back(*item);
            continue;
          }
        }
        const Expr& transform = e.macro == Macro::kMap ? body : *e.args[2];
        Result t;
        status = Eval(transform, frame, &t);
        if (!status.ok()) return status;
        result.push_back(t.Take());
      }
      out->Set(Value::List(std::move(result)));
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown macro");
}

absl::Status EvalSelect(const Expr& e, const Frame& frame, Result* out) {
  // The longest bound qualified name wins (langdef.md "Name
  // Resolution"); the outermost selection tries the longest name.
  if (!e.qualified.empty() && frame.activation->has_qualified_names()) {
    if (const Value* v = frame.activation->Find(e.qualified)) {
      out->Borrow(*v);
      return absl::OkStatus();
    }
  }
  Result operand;
  absl::Status status = Eval(*e.args[0], frame, &operand);
  if (!status.ok()) return status;
  return Select(operand, e.name, out);
}

absl::Status EvalIndex(const Expr& e, const Frame& frame, Result* out) {
  Result container;
  absl::Status status = Eval(*e.args[0], frame, &container);
  if (!status.ok()) return status;
  Result index;
  status = Eval(*e.args[1], frame, &index);
  if (!status.ok()) return status;
  return Index(container, index.value(), out);
}

absl::Status EvalCall(const Expr& e, const Frame& frame, Result* out) {
  // Functions are strict: the first failing argument fails the call.
  // The parser builds calls of at most two arguments, receiver included.
  Result results[2];
  const Value* args[2];
  const size_t n = e.args.size();
  assert(n <= 2);
  for (size_t i = 0; i < n; ++i) {
    absl::Status status = Eval(*e.args[i], frame, &results[i]);
    if (!status.ok()) return status;
    args[i] = &results[i].value();
  }
  Value value;
  absl::Status status = CallBuiltin(e, absl::MakeConstSpan(args, n), &value);
  if (!status.ok()) return status;
  out->Set(std::move(value));
  return absl::OkStatus();
}

absl::Status EvalList(const Expr& e, const Frame& frame, Result* out) {
  std::vector<Value> elements;
  elements.reserve(e.args.size());
  for (const auto& arg : e.args) {
    Result r;
    absl::Status status = Eval(*arg, frame, &r);
    if (!status.ok()) return status;
    elements.push_back(r.Take());
  }
  out->Set(Value::List(std::move(elements)));
  return absl::OkStatus();
}

absl::Status EvalMap(const Expr& e, const Frame& frame, Result* out) {
  std::vector<std::pair<Value, Value>> entries;
  entries.reserve(e.args.size() / 2);
  for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
    Result k;
    absl::Status status = Eval(*e.args[i], frame, &k);
    if (!status.ok()) return status;
    Result v;
    status = Eval(*e.args[i + 1], frame, &v);
    if (!status.ok()) return status;
    entries.emplace_back(k.Take(), v.Take());
  }
  absl::StatusOr<Value> map = Value::Map(std::move(entries));
  if (!map.ok()) return map.status();
  out->Set(*std::move(map));
  return absl::OkStatus();
}

absl::Status EvalConditional(const Expr& e, const Frame& frame, Result* out) {
  // Only the chosen branch is evaluated.
  Result cond;
  absl::Status status = Eval(*e.args[0], frame, &cond);
  if (!status.ok()) return status;
  if (!cond.value().is_bool()) {
    return NoSuchOverload("_?_:_", {&cond.value()});
  }
  return Eval(*e.args[cond.value().bool_value() ? 1 : 2], frame, out);
}

}  // namespace

absl::Status Eval(const Expr& e, const Frame& frame, Result* out) {
  switch (e.kind) {
    case ExprKind::kConst:
      out->Borrow(e.value);
      return absl::OkStatus();

    case ExprKind::kIdent: {
      const Value* v = frame.activation->Find(e.name);
      if (v == nullptr) {
        return Error(absl::StrCat("undeclared reference to '", e.name, "'"));
      }
      out->Borrow(*v);
      return absl::OkStatus();
    }

    case ExprKind::kIterVar:
      out->Borrow(*frame.slots[e.slot]);
      return absl::OkStatus();

    case ExprKind::kSelect:
      return EvalSelect(e, frame, out);

    case ExprKind::kHas: {
      Result operand;
      absl::Status status = Eval(*e.args[0], frame, &operand);
      if (!status.ok()) return status;
      return Has(operand.value(), e.name, out);
    }

    case ExprKind::kIndex:
      return EvalIndex(e, frame, out);

    case ExprKind::kCall:
      return EvalCall(e, frame, out);

    case ExprKind::kList:
      return EvalList(e, frame, out);

    case ExprKind::kMap:
      return EvalMap(e, frame, out);

    case ExprKind::kAnd:
      return Logical(e, frame, true, out);

    case ExprKind::kOr:
      return Logical(e, frame, false, out);

    case ExprKind::kConditional:
      return EvalConditional(e, frame, out);

    case ExprKind::kComprehension:
      return Comprehension(e, frame, out);
  }
  return absl::InternalError("unknown expression kind");
}

}  // namespace navarch::cel::internal
