#include "navarch/provider/aws/ec2_xml.h"

#include <expat.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace navarch {
namespace {

constexpr int kMaxDepth = 64;

struct Builder {
  XmlElement root;
  std::vector<XmlElement*> open;  // the path from the root
  bool too_deep = false;
};

void OnStart(void* data, const XML_Char* name, const XML_Char** /*attrs*/) {
  auto* b = static_cast<Builder*>(data);
  if (b->open.empty()) {
    b->root.name = name;
    b->open.push_back(&b->root);
    return;
  }
  if (b->open.size() >= kMaxDepth) {
    b->too_deep = true;
    return;
  }
  // Safe: only the last element's children grow, and it is not held.
  b->open.back()->children.push_back({name, "", {}});
  b->open.push_back(&b->open.back()->children.back());
}

void OnEnd(void* data, const XML_Char* /*name*/) {
  auto* b = static_cast<Builder*>(data);
  if (!b->open.empty()) b->open.pop_back();
}

void OnText(void* data, const XML_Char* s, int len) {
  auto* b = static_cast<Builder*>(data);
  if (!b->open.empty()) b->open.back()->text.append(s, len);
}

Ec2Instance ReadInstance(const XmlElement& item) {
  Ec2Instance i;
  i.id = item.Text("instanceId");
  i.state = item.Text("instanceState/name");
  i.instance_type = item.Text("instanceType");
  i.zone = item.Text("placement/availabilityZone");
  i.private_ip = item.Text("privateIpAddress");
  i.launch_time = item.Text("launchTime");
  if (const XmlElement* tags = item.Child("tagSet")) {
    for (const XmlElement& t : tags->children) {
      if (t.name == "item") i.tags[t.Text("key")] = t.Text("value");
    }
  }
  return i;
}

absl::StatusOr<XmlElement> ParseAnswer(absl::string_view body,
                                       absl::string_view root) {
  absl::StatusOr<XmlElement> doc = ParseXml(body);
  if (!doc.ok()) return doc.status();
  if (doc->name != root) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected <", root, ">, got <", doc->name, ">"));
  }
  return doc;
}

}  // namespace

const XmlElement* XmlElement::Child(absl::string_view child) const {
  for (const XmlElement& c : children) {
    if (c.name == child) return &c;
  }
  return nullptr;
}

const XmlElement* XmlElement::Find(absl::string_view path) const {
  const XmlElement* e = this;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    e = e->Child(part);
    if (e == nullptr) return nullptr;
  }
  return e;
}

std::string XmlElement::Text(absl::string_view path) const {
  const XmlElement* e = Find(path);
  return e == nullptr ? "" : std::string(absl::StripAsciiWhitespace(e->text));
}

absl::StatusOr<XmlElement> ParseXml(absl::string_view xml) {
  std::unique_ptr<XML_ParserStruct, decltype(&XML_ParserFree)> parser(
      XML_ParserCreate("UTF-8"), &XML_ParserFree);
  if (parser == nullptr) return absl::InternalError("expat: no parser");
  Builder b;
  XML_SetUserData(parser.get(), &b);
  XML_SetElementHandler(parser.get(), OnStart, OnEnd);
  XML_SetCharacterDataHandler(parser.get(), OnText);
  if (XML_Parse(parser.get(), xml.data(), static_cast<int>(xml.size()),
                XML_TRUE) != XML_STATUS_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed XML at line ", XML_GetCurrentLineNumber(parser.get()), ": ",
        XML_ErrorString(XML_GetErrorCode(parser.get()))));
  }
  if (b.too_deep) return absl::InvalidArgumentError("XML nested too deep");
  return std::move(b.root);
}

std::optional<Ec2Error> ParseEc2Error(absl::string_view body) {
  absl::StatusOr<XmlElement> doc = ParseXml(body);
  if (!doc.ok() || doc->name != "Response") return std::nullopt;
  const XmlElement* e = doc->Find("Errors/Error");
  if (e == nullptr || e->Text("Code").empty()) return std::nullopt;
  return Ec2Error{e->Text("Code"), e->Text("Message")};
}

absl::StatusOr<std::vector<Ec2Instance>> ParseRunInstances(
    absl::string_view body) {
  absl::StatusOr<XmlElement> doc = ParseAnswer(body, "RunInstancesResponse");
  if (!doc.ok()) return doc.status();
  std::vector<Ec2Instance> out;
  if (const XmlElement* set = doc->Child("instancesSet")) {
    for (const XmlElement& item : set->children) {
      if (item.name == "item") out.push_back(ReadInstance(item));
    }
  }
  return out;
}

absl::StatusOr<Ec2InstancePage> ParseDescribeInstances(absl::string_view body) {
  absl::StatusOr<XmlElement> doc =
      ParseAnswer(body, "DescribeInstancesResponse");
  if (!doc.ok()) return doc.status();
  Ec2InstancePage page;
  page.next_token = doc->Text("nextToken");
  const XmlElement* reservations = doc->Child("reservationSet");
  if (reservations == nullptr) return page;
  for (const XmlElement& r : reservations->children) {
    const XmlElement* set = r.Child("instancesSet");
    if (r.name != "item" || set == nullptr) continue;
    for (const XmlElement& item : set->children) {
      if (item.name == "item") page.instances.push_back(ReadInstance(item));
    }
  }
  return page;
}

absl::StatusOr<Ec2InstanceTypePage> ParseDescribeInstanceTypes(
    absl::string_view body) {
  absl::StatusOr<XmlElement> doc =
      ParseAnswer(body, "DescribeInstanceTypesResponse");
  if (!doc.ok()) return doc.status();
  Ec2InstanceTypePage page;
  page.next_token = doc->Text("nextToken");
  const XmlElement* set = doc->Child("instanceTypeSet");
  if (set == nullptr) return page;
  for (const XmlElement& item : set->children) {
    if (item.name != "item") continue;
    Ec2InstanceType t;
    t.name = item.Text("instanceType");
    (void)absl::SimpleAtoi(item.Text("vCpuInfo/defaultVCpus"), &t.vcpus);
    (void)absl::SimpleAtoi(item.Text("memoryInfo/sizeInMiB"), &t.memory_mib);
    if (const XmlElement* gpus = item.Find("gpuInfo/gpus")) {
      for (const XmlElement& g : gpus->children) {
        if (g.name != "item") continue;
        int count = 0;
        (void)absl::SimpleAtoi(g.Text("count"), &count);
        t.gpu_count += count;
        if (t.gpu_name.empty()) {
          t.gpu_name = g.Text("name");
          t.gpu_maker = g.Text("manufacturer");
        }
      }
    }
    page.types.push_back(std::move(t));
  }
  return page;
}

}  // namespace navarch
