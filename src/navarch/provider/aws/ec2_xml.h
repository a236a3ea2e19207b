// EC2's XML answers, read with expat: a small element tree, and the parts of
// RunInstances, DescribeInstances, DescribeInstanceTypes and error answers the
// provider needs.
#ifndef NAVARCH_PROVIDER_AWS_EC2_XML_H_
#define NAVARCH_PROVIDER_AWS_EC2_XML_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace navarch {

// An element: its name (as written, namespace prefix included), its text
// (character data directly inside it) and its child elements.
struct XmlElement {
  std::string name;
  std::string text;
  std::vector<XmlElement> children;

  const XmlElement* Child(absl::string_view child) const;  // first; or null
  // The text of the child at `path` ("instanceState/name"); "" if absent.
  std::string Text(absl::string_view path) const;
  const XmlElement* Find(absl::string_view path) const;
};

// INVALID_ARGUMENT for malformed XML or more than 64 levels of nesting.
absl::StatusOr<XmlElement> ParseXml(absl::string_view xml);

struct Ec2Error {
  std::string code;
  std::string message;
};
// The first <Response><Errors><Error> of an error answer; nullopt when the
// body is not one.
std::optional<Ec2Error> ParseEc2Error(absl::string_view body);

struct Ec2Instance {
  std::string id;
  std::string state;  // pending, running, shutting-down, terminated, ...
  std::string instance_type;
  std::string zone;
  std::string private_ip;
  std::string launch_time;  // RFC 3339
  std::map<std::string, std::string> tags;
};

// instancesSet/item of a RunInstancesResponse.
absl::StatusOr<std::vector<Ec2Instance>> ParseRunInstances(
    absl::string_view body);

struct Ec2InstancePage {
  std::vector<Ec2Instance> instances;
  std::string next_token;  // empty on the last page
};
// reservationSet/item/instancesSet/item of a DescribeInstancesResponse.
absl::StatusOr<Ec2InstancePage> ParseDescribeInstances(absl::string_view body);

struct Ec2InstanceType {
  std::string name;  // "p5.48xlarge"
  int vcpus = 0;     // vCpuInfo/defaultVCpus
  int64_t memory_mib = 0;
  int gpu_count = 0;      // the sum over gpuInfo/gpus
  std::string gpu_name;   // the first GPU's name ("H100")
  std::string gpu_maker;  // and manufacturer ("NVIDIA")
};
struct Ec2InstanceTypePage {
  std::vector<Ec2InstanceType> types;
  std::string next_token;  // empty on the last page
};
// instanceTypeSet/item of a DescribeInstanceTypesResponse.
absl::StatusOr<Ec2InstanceTypePage> ParseDescribeInstanceTypes(
    absl::string_view body);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_AWS_EC2_XML_H_
