// Strict reading of a YAML file: every key must be known, every value must
// have the expected type, and every problem is collected as a ConfigError with
// its file, line, column and key path instead of stopping at the first one.
// The one reader of every YAML file Navarch takes: the control plane's
// configuration (config_loader.cc), simulator scenarios (sim/scenario.cc), the
// agent's configuration (agent/agent_config.cc) and health policies
// (health/policy.cc). Each of those holds its schema as tables of KeySpecs.
//
// Two kinds of names travel together:
//  - the *path* is what the user wrote ("pools.training.scaling.min_nodes"),
//    used in messages;
//  - the *slot* is the canonical setting ("pools.training.min_nodes"), so that
//    an alias or a second spelling of the same setting is caught as a
//    conflict instead of one silently winning.
#ifndef NAVARCH_CONFIG_YAML_READER_H_
#define NAVARCH_CONFIG_YAML_READER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/config/config_error.h"
#include "yaml-cpp/yaml.h"

namespace navarch::yaml {

// Where something is: 1-based line and column (0 = unknown) and the path.
struct Site {
  int line = 0;
  int column = 0;
  std::string path;
};

// A key and its value inside a mapping, or an item of a list (key empty).
struct Entry {
  std::string key;  // As written.
  std::string slot;
  YAML::Node value;
  Site site;      // The value; its key when the value is empty.
  Site key_site;  // The key itself, with the path of the enclosing mapping.
};

// How one key of a mapping is read. names[0] is the canonical spelling, the
// rest are accepted aliases; a name ending in '*' matches every key with that
// prefix. The entry's slot is <prefix>.<slot>, where slot
// defaults to names[0] and may itself contain dots.
struct KeySpec {
  std::vector<std::string> names;
  std::string slot;
  std::function<void(const Entry&)> read;
};

// Bounds what a configuration file may hold; the real ones are kilobytes.
inline constexpr size_t kMaxFileBytes = 4 << 20;

// Bounds the work of reading a file. Aliases and merge keys make a small file
// stand for a huge tree (each level of `<<: [*a, *a]` doubles it), and
// reading it whole would take exponential time; so a reader visits at most
// kMinNodeBudget nodes (list items and mapping keys, merged ones included),
// or kNodeBudgetPerNode per node the file writes (an alias counts one) when
// that is more, and refuses the file past it. Reading a file without aliases
// visits about half of its nodes, so only repetition reaches the budget, and
// the work of reading any file stays within a small multiple of the work of
// parsing it. The minimum is far above what real files use with anchors and
// low enough that the costliest refusal (nested composite autoscalers) takes
// a second or two under the sanitizers of the fuzz build, well inside its
// 10 s timeout.
inline constexpr int64_t kMinNodeBudget = 50'000;
inline constexpr int64_t kNodeBudgetPerNode = 2;

class YamlReader {
 public:
  explicit YamlReader(std::string filename) : filename_(std::move(filename)) {}

  // Parses `text` as one YAML document (empty text: a null node). Nullopt,
  // with the error recorded, when it is not YAML or larger than `max_bytes`.
  // More than one document is an error too, but the first is still read.
  // Sets the node budget (kMinNodeBudget) from the nodes the document holds.
  std::optional<YAML::Node> Load(absl::string_view text,
                                 size_t max_bytes = kMaxFileBytes);
  // Runs `read`, recording what yaml-cpp throws (it throws from node access
  // too) as an error: no exception leaves a reader that servers call.
  void Guard(const std::function<void()>& read);

  // Records an error; ignored once the node budget is spent, since the rest
  // of the file was not read and anything said about it would mislead.
  void Error(const Site& site, std::string message);
  bool has_errors() const { return !errors_.empty(); }
  // Errors in file order (problems without a position last).
  std::vector<ConfigError> TakeErrors();

  // The site of a node, falling back to `fallback`'s position when the node
  // has none (empty values), with `path`.
  static Site SiteOf(const YAML::Node& node, const Site& fallback,
                     std::string path);

  // Reads a mapping with a fixed set of keys: unknown keys (the message lists
  // the known ones unless there are many), duplicate keys and a key given
  // together with its alias are errors. A null node is an empty
  // mapping; anything else that is not a mapping is an error. False when the
  // node could not be read as a mapping at all (reported).
  bool ReadMap(const YAML::Node& node, const Site& site,
               absl::string_view slot_prefix, const std::vector<KeySpec>& keys);
  // Entries of a mapping whose keys are names chosen by the user (pools,
  // providers), in file order, with duplicates reported and YAML merge keys
  // ("<<: *anchor") expanded. Slots are <prefix>.<key>.
  std::vector<Entry> MapEntries(const YAML::Node& node, const Site& site,
                                absl::string_view slot_prefix);
  // Items of a list; paths and slots get "[i]". Null is an empty list.
  std::vector<Entry> ListItems(const YAML::Node& node, const Site& site,
                               absl::string_view slot_prefix);

  // Records that `slot` is set at `site`. False (and an error) when it was
  // already set elsewhere: two spellings of one setting.
  bool Claim(const std::string& slot, const Site& site);
  // Like Claim, for named things (a pool defined twice); `what` names it.
  bool ClaimName(const std::string& slot, const Site& site,
                 absl::string_view what);
  bool IsSet(const std::string& slot) const { return sites_.count(slot) > 0; }
  // The site where `slot` was set, or of its nearest set ancestor.
  Site Nearest(absl::string_view slot) const;

  // Typed values. Each returns nullopt when the value is null (the setting is
  // left unset) or has the wrong type or range (reported).
  std::optional<std::string> String(const Entry& e);
  std::optional<int64_t> Int(const Entry& e, int64_t min, int64_t max);
  std::optional<bool> Bool(const Entry& e);
  std::optional<double> Double(const Entry& e, double min, double max);
  // A Go duration string ("30s", "1h30m") or 0; negative is an error.
  std::optional<absl::Duration> Duration(const Entry& e);
  std::optional<std::vector<std::string>> StringList(const Entry& e);
  std::optional<std::map<std::string, std::string>> StringMap(const Entry& e);

 private:
  struct RawEntry {
    YAML::Node key;
    YAML::Node value;
  };
  // Entries of `map` with merge keys expanded; explicit keys win over merged
  // ones, as YAML specifies.
  void Collect(const YAML::Node& map, const Site& site, bool top,
               std::vector<RawEntry>* out,
               std::map<std::string, int>* first_line, int depth);
  bool EnterNested(const Site& site);
  // Counts one node visited at `site`. False once the budget is spent; the
  // first time, the file is refused with an error there.
  bool Visit(const Site& site);

  std::string filename_;
  std::vector<ConfigError> errors_;
  std::map<std::string, Site> sites_;
  int depth_ = 0;
  int64_t nodes_left_ = kMinNodeBudget;  // Load sets both from the document.
  int64_t node_budget_ = kMinNodeBudget;
  bool out_of_budget_ = false;
};

}  // namespace navarch::yaml

#endif  // NAVARCH_CONFIG_YAML_READER_H_
