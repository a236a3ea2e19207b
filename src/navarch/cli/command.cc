#include "navarch/cli/command.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace navarch::cli {
namespace {

constexpr absl::string_view kUsagePayload = "navarch.cli/usage";

}  // namespace

void Output::Json(const nlohmann::json& value) {
  // Replace, not throw, on invalid UTF-8: a label with stray bytes must not
  // take the whole listing down.
  out_ << value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
       << "\n";
}

void Output::Warn(absl::string_view message) {
  err_ << "Warning: " << message << "\n";
}

absl::Status UsageError(absl::string_view message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kUsagePayload, absl::Cord("1"));
  return s;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

CLI::App* CommandSet::Add(CLI::App* parent, const std::string& name,
                          const std::string& description, Runner run) {
  CLI::App* sub = parent->add_subcommand(name, description);
  runners_.push_back(std::make_unique<Runner>(std::move(run)));
  const Runner* runner = runners_.back().get();
  sub->callback([this, runner] { chosen_ = runner; });
  return sub;
}

}  // namespace navarch::cli
