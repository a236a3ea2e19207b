#include "navarch/config/yaml_reader.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/base/duration.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"

namespace navarch::yaml {
namespace {

// Deep enough for any real configuration (composite autoscalers nest a few
// levels); bounds the recursion a YAML alias cycle would otherwise cause.
constexpr int kMaxDepth = 32;

const char kYamlIntTag[] = "tag:yaml.org,2002:int";
const char kYamlFloatTag[] = "tag:yaml.org,2002:float";
const char kYamlBoolTag[] = "tag:yaml.org,2002:bool";

std::string Join(absl::string_view prefix, absl::string_view name) {
  if (prefix.empty()) return std::string(name);
  return absl::StrCat(prefix, ".", name);
}

// How a value reads in a message: "'abc'", "a list", "a mapping", "nothing".
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      std::string v = node.Scalar();
      if (v.size() > 40) v = absl::StrCat(v.substr(0, 37), "...");
      return absl::StrCat("'", v, "'");
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// A plain (unquoted) scalar, or one tagged with `tag`: only those may be
// numbers or booleans. "5" in quotes is a string, as in Go's yaml package.
bool IsPlainOr(const YAML::Node& node, absl::string_view tag) {
  return node.Tag() == "?" || node.Tag() == tag;
}

// Names the bound that was crossed: "must be >= 0", "must be > 0",
// "must be <= 24".
std::string RangeText(int64_t value, int64_t min, int64_t max) {
  if (value > max) return absl::StrCat("must be <= ", max);
  if (min == 1) return "must be > 0";
  return absl::StrCat("must be >= ", min);
}

// Mappings with more keys than this get no list in the message: a long one
// hides the mistake, and docs/configuration.md lists them all.
constexpr size_t kMaxKeysListed = 13;

// " (known: at, action, target, params)": the canonical names, without
// wildcards; empty for mappings with many keys.
std::string KnownKeys(const std::vector<KeySpec>& keys) {
  std::vector<absl::string_view> names;
  for (const KeySpec& k : keys) {
    if (!absl::EndsWith(k.names.front(), "*")) names.push_back(k.names.front());
  }
  if (names.empty() || names.size() > kMaxKeysListed) return "";
  return absl::StrCat(" (known: ", absl::StrJoin(names, ", "), ")");
}

const KeySpec* FindKey(const std::vector<KeySpec>& keys,
                       const std::string& name) {
  for (const KeySpec& k : keys) {
    for (const std::string& n : k.names) {
      if (n == name || (absl::EndsWith(n, "*") && n.size() > 1 &&
                        absl::StartsWith(name, n.substr(0, n.size() - 1)))) {
        return &k;
      }
    }
  }
  return nullptr;
}

// Follows a document's parse events without building nodes; keeps where
// the document starts and counts the nodes written (an alias is one).
class DocumentProbe : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { ++nodes; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { ++nodes; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    ++nodes;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++nodes;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++nodes;
  }
  void OnMapEnd() override {}

  YAML::Mark start;
  int64_t nodes = 0;
};

}  // namespace

std::optional<YAML::Node> YamlReader::Load(absl::string_view text,
                                           size_t max_bytes) {
  if (text.size() > max_bytes) {
    Error(Site{}, absl::StrCat("file is larger than ", max_bytes, " bytes"));
    return std::nullopt;
  }
  std::optional<YAML::Node> root;
  Guard([&] {
    const std::string copy(text);
    root = YAML::Load(copy);
    // A second document is an error. Not YAML::LoadAll: on some malformed
    // input (a NUL byte, a stray ',') yaml-cpp 0.7's parser reports empty
    // documents without end, and LoadAll loops building them until memory
    // runs out (found by config_fuzz and scenario_fuzz). Looking at two
    // documents at most is bounded.
    std::istringstream in(copy);
    YAML::Parser parser(in);
    DocumentProbe probe;
    int documents = 0;
    while (documents < 2 && parser.HandleNextDocument(probe)) {
      if (++documents == 1) {
        node_budget_ =
            std::max(kMinNodeBudget, kNodeBudgetPerNode * probe.nodes);
        nodes_left_ = node_budget_;
      }
    }
    if (documents > 1) {
      Error(Site{probe.start.line + 1, probe.start.column + 1},
            "only one YAML document is allowed (a second one starts here)");
    }
  });
  return root;
}

void YamlReader::Guard(const std::function<void()>& read) {
  try {
    read();
  } catch (const YAML::Exception& e) {
    Site site;
    if (!e.mark.is_null()) {
      site.line = e.mark.line + 1;
      site.column = e.mark.column + 1;
    }
    Error(site, absl::StrCat("invalid YAML: ", e.msg));
  } catch (const std::exception& e) {
    Error(Site{}, absl::StrCat("cannot read the file: ", e.what()));
  }
}

void YamlReader::Error(const Site& site, std::string message) {
  if (out_of_budget_) return;
  errors_.push_back(ConfigError{filename_, site.line, site.column, site.path,
                                std::move(message)});
}

std::vector<ConfigError> YamlReader::TakeErrors() {
  std::stable_sort(errors_.begin(), errors_.end(),
                   [](const ConfigError& a, const ConfigError& b) {
                     const int la = a.line > 0 ? a.line : INT32_MAX;
                     const int lb = b.line > 0 ? b.line : INT32_MAX;
                     if (la != lb) return la < lb;
                     return a.column < b.column;
                   });
  return std::move(errors_);
}

Site YamlReader::SiteOf(const YAML::Node& node, const Site& fallback,
                        std::string path) {
  Site site{fallback.line, fallback.column, std::move(path)};
  // yaml-cpp gives an empty value the position of whatever follows it, which
  // would point at the next line; the key is the better place to show.
  if (node.IsDefined() && !node.IsNull()) {
    const YAML::Mark mark = node.Mark();
    if (!mark.is_null() && mark.line >= 0) {
      site.line = mark.line + 1;
      site.column = mark.column + 1;
    }
  }
  return site;
}

bool YamlReader::EnterNested(const Site& site) {
  if (depth_ >= kMaxDepth) {
    Error(site, absl::StrCat("nesting is deeper than ", kMaxDepth,
                             " levels (an alias that refers to itself?)"));
    return false;
  }
  return true;
}

bool YamlReader::Visit(const Site& site) {
  if (out_of_budget_) return false;
  if (nodes_left_-- > 0) return true;
  Error(site, absl::StrCat("YAML expands to more than ", node_budget_,
                           " nodes (aliases or merge keys repeat the same "
                           "nodes); at most ",
                           kMinNodeBudget,
                           ", or twice as many as the file writes, are read"));
  out_of_budget_ = true;
  return false;
}

void YamlReader::Collect(const YAML::Node& map, const Site& site, bool top,
                         std::vector<RawEntry>* out,
                         std::map<std::string, int>* first_line, int depth) {
  if (depth > kMaxDepth) {
    Error(site, "merge keys nest too deeply");
    return;
  }
  std::vector<YAML::Node> merges;
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies: the iterator hands out a temporary pair.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    const Site key_site = SiteOf(key, site, site.path);
    if (!Visit(key_site)) return;
    if (!key.IsScalar()) {
      Error(key_site,
            absl::StrCat("keys must be strings, got ", Describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    if (name == "<<" && key.Tag() == "?") {
      merges.push_back(value);
      continue;
    }
    auto [pos, inserted] = first_line->emplace(name, key_site.line);
    if (!inserted) {
      // Within one mapping a repeated key is a mistake; a key repeated by a
      // merged mapping is simply overridden, as YAML specifies.
      if (top) {
        Error(key_site, absl::StrCat("duplicate key '", name,
                                     "' (first at line ", pos->second, ")"));
      }
      continue;
    }
    out->push_back(RawEntry{key, value});
  }
  for (const YAML::Node& merge : merges) {
    const Site merge_site = SiteOf(merge, site, site.path);
    if (merge.IsMap()) {
      Collect(merge, merge_site, false, out, first_line, depth + 1);
    } else if (merge.IsSequence()) {
      for (const YAML::Node& item : merge) {
        // Each item, so that merging an empty mapping many times is paid
        // for too.
        if (!Visit(merge_site)) return;
        if (item.IsMap()) {
          Collect(item, merge_site, false, out, first_line, depth + 1);
        } else {
          Error(merge_site, "'<<' needs a mapping or a list of mappings");
        }
      }
    } else {
      Error(merge_site, "'<<' needs a mapping or a list of mappings");
    }
  }
}

bool YamlReader::ReadMap(const YAML::Node& node, const Site& site,
                         absl::string_view slot_prefix,
                         const std::vector<KeySpec>& keys) {
  if (!node.IsDefined() || node.IsNull()) return true;
  if (!node.IsMap()) {
    Error(site, absl::StrCat("expected a mapping, got ", Describe(node)));
    return false;
  }
  if (!EnterNested(site)) return false;
  ++depth_;
  std::vector<RawEntry> raw;
  std::map<std::string, int> first_line;
  Collect(node, site, /*top=*/true, &raw, &first_line, 0);
  if (out_of_budget_) raw.clear();  // Half a mapping is not read.
  // canonical name -> (spelling used, line) of the keys read so far.
  std::map<std::string, std::pair<std::string, int>> used;
  for (const RawEntry& r : raw) {
    const std::string& name = r.key.Scalar();
    Site key_site = SiteOf(r.key, site, site.path);
    const KeySpec* spec = FindKey(keys, name);
    if (spec == nullptr) {
      Error(key_site,
            absl::StrCat("unknown key '", name, "'", KnownKeys(keys)));
      continue;
    }
    // A wildcard ("x-*") stands for many keys, each a setting of its own.
    const std::string& canonical =
        absl::EndsWith(spec->names.front(), "*") ? name : spec->names.front();
    auto [prev, inserted] =
        used.emplace(canonical, std::make_pair(name, key_site.line));
    if (!inserted) {
      Error(key_site, absl::StrCat("'", name, "' and '", prev->second.first,
                                   "' (line ", prev->second.second,
                                   ") are the same setting; keep one"));
      continue;
    }
    Entry e;
    e.key = name;
    e.slot = Join(slot_prefix, spec->slot.empty() ? canonical : spec->slot);
    e.value = r.value;
    e.site = SiteOf(r.value, key_site, Join(site.path, name));
    e.key_site = key_site;
    spec->read(e);
  }
  --depth_;
  return true;
}

std::vector<Entry> YamlReader::MapEntries(const YAML::Node& node,
                                          const Site& site,
                                          absl::string_view slot_prefix) {
  std::vector<Entry> entries;
  if (!node.IsDefined() || node.IsNull()) return entries;
  if (!node.IsMap()) {
    Error(site, absl::StrCat("expected a mapping, got ", Describe(node)));
    return entries;
  }
  std::vector<RawEntry> raw;
  std::map<std::string, int> first_line;
  Collect(node, site, /*top=*/true, &raw, &first_line, 0);
  if (out_of_budget_) return entries;
  for (const RawEntry& r : raw) {
    Entry e;
    e.key = r.key.Scalar();
    e.slot = Join(slot_prefix, e.key);
    e.key_site = SiteOf(r.key, site, site.path);
    e.value = r.value;
    e.site = SiteOf(r.value, e.key_site, Join(site.path, e.key));
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<Entry> YamlReader::ListItems(const YAML::Node& node,
                                         const Site& site,
                                         absl::string_view slot_prefix) {
  std::vector<Entry> items;
  if (!node.IsDefined() || node.IsNull()) return items;
  if (!node.IsSequence()) {
    Error(site, absl::StrCat("expected a list, got ", Describe(node)));
    return items;
  }
  int i = 0;
  for (const YAML::Node& item : node) {
    const std::string index = absl::StrCat("[", i++, "]");
    Entry e;
    e.slot = absl::StrCat(slot_prefix, index);
    e.value = item;
    e.site = SiteOf(item, site, absl::StrCat(site.path, index));
    e.key_site = e.site;
    if (!Visit(e.site)) return {};
    items.push_back(std::move(e));
  }
  return items;
}

bool YamlReader::Claim(const std::string& slot, const Site& site) {
  auto [it, inserted] = sites_.emplace(slot, site);
  if (inserted) return true;
  Error(site, absl::StrCat("already set at line ", it->second.line, " (",
                           it->second.path, ")"));
  return false;
}

bool YamlReader::ClaimName(const std::string& slot, const Site& site,
                           absl::string_view what) {
  auto [it, inserted] = sites_.emplace(slot, site);
  if (inserted) return true;
  Error(site, absl::StrCat(what, " is defined twice (first at line ",
                           it->second.line, ")"));
  return false;
}

Site YamlReader::Nearest(absl::string_view slot) const {
  std::string s(slot);
  while (true) {
    auto it = sites_.find(s);
    if (it != sites_.end()) return it->second;
    const size_t cut = s.find_last_of(".[");
    if (cut == std::string::npos) return Site{};
    s.resize(cut);
  }
}

std::optional<std::string> YamlReader::String(const Entry& e) {
  if (e.value.IsNull()) return std::nullopt;
  if (!e.value.IsScalar()) {
    Error(e.site, absl::StrCat("expected a string, got ", Describe(e.value)));
    return std::nullopt;
  }
  return e.value.Scalar();
}

std::optional<int64_t> YamlReader::Int(const Entry& e, int64_t min,
                                       int64_t max) {
  if (e.value.IsNull()) return std::nullopt;
  const std::string text = e.value.IsScalar() ? e.value.Scalar() : "";
  bool digits = !text.empty();
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!(absl::ascii_isdigit(c) || (i == 0 && (c == '-' || c == '+')))) {
      digits = false;
    }
  }
  int64_t v = 0;
  if (!e.value.IsScalar() || !IsPlainOr(e.value, kYamlIntTag) || !digits ||
      !absl::SimpleAtoi(text, &v)) {
    Error(e.site, absl::StrCat("expected an integer, got ", Describe(e.value)));
    return std::nullopt;
  }
  if (v < min || v > max) {
    Error(e.site, absl::StrCat(RangeText(v, min, max), ", got ", v));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> YamlReader::Bool(const Entry& e) {
  if (e.value.IsNull()) return std::nullopt;
  if (e.value.IsScalar() && IsPlainOr(e.value, kYamlBoolTag)) {
    // YAML 1.2 booleans plus the YAML 1.1 words Go's yaml package accepts.
    const std::string v = absl::AsciiStrToLower(e.value.Scalar());
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
  }
  Error(e.site,
        absl::StrCat("expected true or false, got ", Describe(e.value)));
  return std::nullopt;
}

std::optional<double> YamlReader::Double(const Entry& e, double min,
                                         double max) {
  if (e.value.IsNull()) return std::nullopt;
  double v = 0;
  if (!e.value.IsScalar() ||
      !(IsPlainOr(e.value, kYamlFloatTag) || e.value.Tag() == kYamlIntTag) ||
      !absl::SimpleAtod(e.value.Scalar(), &v) || !std::isfinite(v)) {
    Error(e.site, absl::StrCat("expected a number, got ", Describe(e.value)));
    return std::nullopt;
  }
  if (v < min || v > max) {
    Error(e.site, absl::StrCat("must be between ", min, " and ", max, ", got ",
                               e.value.Scalar()));
    return std::nullopt;
  }
  return v;
}

std::optional<absl::Duration> YamlReader::Duration(const Entry& e) {
  if (e.value.IsNull()) return std::nullopt;
  if (!e.value.IsScalar()) {
    Error(e.site, absl::StrCat("expected a duration such as 30s or 5m, got ",
                               Describe(e.value)));
    return std::nullopt;
  }
  absl::StatusOr<absl::Duration> d = ParseGoDuration(e.value.Scalar());
  if (!d.ok()) {
    Error(e.site, std::string(d.status().message()));
    return std::nullopt;
  }
  if (*d < absl::ZeroDuration()) {
    Error(e.site, absl::StrCat("must not be negative, got ", e.value.Scalar()));
    return std::nullopt;
  }
  return *d;
}

std::optional<std::vector<std::string>> YamlReader::StringList(const Entry& e) {
  if (e.value.IsNull()) return std::nullopt;
  if (!e.value.IsSequence()) {
    Error(e.site, absl::StrCat("expected a list, got ", Describe(e.value)));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const Entry& item : ListItems(e.value, e.site, e.slot)) {
    if (!item.value.IsScalar()) {
      Error(item.site,
            absl::StrCat("expected a string, got ", Describe(item.value)));
      ok = false;
      continue;
    }
    out.push_back(item.value.Scalar());
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::map<std::string, std::string>> YamlReader::StringMap(
    const Entry& e) {
  if (e.value.IsNull()) return std::nullopt;
  if (!e.value.IsMap()) {
    Error(e.site, absl::StrCat("expected a mapping, got ", Describe(e.value)));
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  bool ok = true;
  for (const Entry& item : MapEntries(e.value, e.site, e.slot)) {
    if (item.value.IsNull()) {
      out[item.key] = "";  // `key:` with no value is the empty string.
    } else if (item.value.IsScalar()) {
      out[item.key] = item.value.Scalar();
    } else {
      Error(item.site,
            absl::StrCat("expected a string, got ", Describe(item.value)));
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace navarch::yaml
