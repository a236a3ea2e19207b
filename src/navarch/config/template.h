// The templates of a pool's user_data and setup_commands: upstream's
// variables in Go text/template's spelling, "{{.Pool}}" (spaces inside the
// braces allowed), and nothing else of text/template. A template is checked
// when the configuration is loaded, so an unknown variable is an error at
// start-up rather than a broken script on a new machine.
#ifndef NAVARCH_CONFIG_TEMPLATE_H_
#define NAVARCH_CONFIG_TEMPLATE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace navarch {

// What a bootstrap template may use: upstream's ControlPlane, Pool, NodeID,
// Provider, Region and InstanceType, and Navarch's BootstrapToken,
// PackageURL and BinaryURL (the agent served by the control plane).
const std::vector<std::string>& BootstrapTemplateVariables();

// The variables `text` uses, in order of first use. INVALID_ARGUMENT naming
// the offending text for an unterminated "{{", an action that is not a
// variable ("{{if ...}}"), or a variable not in `known`.
absl::StatusOr<std::vector<std::string>> TemplateVariables(
    absl::string_view text, const std::vector<std::string>& known);

// `text` with each variable replaced by its value in `values`;
// INVALID_ARGUMENT as above, or for a variable `values` lacks.
absl::StatusOr<std::string> RenderTemplate(
    absl::string_view text, const std::map<std::string, std::string>& values);

}  // namespace navarch

#endif  // NAVARCH_CONFIG_TEMPLATE_H_
