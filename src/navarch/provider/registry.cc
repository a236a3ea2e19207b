#include "navarch/provider/registry.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace navarch {

absl::Status ProviderRegistry::RegisterFactory(const std::string& type,
                                               ProviderFactory factory) {
  if (!factories_.emplace(type, std::move(factory)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("provider type ", type, " registered twice"));
  }
  return absl::OkStatus();
}

absl::Status ProviderRegistry::Build(
    const std::map<std::string, ProviderConfig>& providers,
    const ProviderContext& context) {
  for (const auto& [name, config] : providers) {
    const std::string type(ProviderTypeName(config.type));
    auto it = factories_.find(type);
    if (it == factories_.end()) {
      return absl::UnimplementedError(absl::StrCat(
          "provider ", name, ": type ", type, " is not supported yet"));
    }
    absl::StatusOr<std::unique_ptr<Provider>> provider =
        it->second(config, context);
    if (!provider.ok()) {
      return absl::Status(provider.status().code(),
                          absl::StartsWith(provider.status().message(),
                                           absl::StrCat("provider ", name, ":"))
                              ? std::string(provider.status().message())
                              : absl::StrCat("provider ", name, ": ",
                                             provider.status().message()));
    }
    if (absl::Status s = Add(*std::move(provider)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ProviderRegistry::Add(std::unique_ptr<Provider> provider) {
  const std::string name = provider->name();
  if (!providers_.emplace(name, std::move(provider)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("provider ", name, " defined twice"));
  }
  return absl::OkStatus();
}

Provider* ProviderRegistry::Get(const std::string& name) const {
  auto it = providers_.find(name);
  return it == providers_.end() ? nullptr : it->second.get();
}

std::vector<Provider*> ProviderRegistry::All() const {
  std::vector<Provider*> all;
  for (const auto& [name, provider] : providers_) all.push_back(provider.get());
  return all;
}

}  // namespace navarch
