#include "navarch/controlplane/test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

namespace navarch::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::cerr << "test_pki: " << what << " failed\n";
  std::abort();
}

std::string Pem(int (*write)(BIO*, void*), void* object) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (write(bio, object) != 1) Die("PEM write");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string CertPem(X509* cert) {
  return Pem(
      [](BIO* b, void* c) {
        return PEM_write_bio_X509(b, static_cast<X509*>(c));
      },
      cert);
}

std::string KeyPem(EVP_PKEY* key) {
  return Pem(
      [](BIO* b, void* k) {
        return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(k), nullptr,
                                        nullptr, 0, nullptr, nullptr);
      },
      key);
}

void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) Die("extension");
  X509_EXTENSION_free(ext);
}

X509* NewCert(EVP_PKEY* key, const std::string& cn) {
  static long serial = 1;
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  return cert;
}

template <typename T>
T* ReadPem(const std::string& pem,
           T* (*read)(BIO*, T**, pem_password_cb*, void*)) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  T* out = read(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (out == nullptr) Die("PEM read");
  return out;
}

}  // namespace

TestCert MakeCa(const std::string& common_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) Die("key generation");
  X509* cert = NewCert(key, common_name);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(cert, cert, NID_subject_key_identifier, "hash");
  if (X509_sign(cert, key, EVP_sha256()) == 0) Die("sign");
  TestCert out{CertPem(cert), KeyPem(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

TestCert IssueCert(const TestCert& ca, const std::string& common_name,
                   const std::vector<std::string>& dns_names,
                   const std::vector<std::string>& ip_addresses, bool server) {
  X509* ca_cert = ReadPem<X509>(ca.cert_pem, PEM_read_bio_X509);
  EVP_PKEY* ca_key = ReadPem<EVP_PKEY>(ca.key_pem, PEM_read_bio_PrivateKey);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) Die("key generation");
  X509* cert = NewCert(key, common_name);
  X509_set_issuer_name(cert, X509_get_subject_name(ca_cert));
  AddExtension(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(cert, ca_cert, NID_key_usage,
               "critical,digitalSignature,keyEncipherment");
  AddExtension(cert, ca_cert, NID_ext_key_usage,
               server ? "serverAuth" : "clientAuth");
  std::vector<std::string> sans;
  for (const std::string& d : dns_names) sans.push_back("DNS:" + d);
  for (const std::string& ip : ip_addresses) sans.push_back("IP:" + ip);
  if (!sans.empty()) {
    AddExtension(cert, ca_cert, NID_subject_alt_name, absl::StrJoin(sans, ","));
  }
  if (X509_sign(cert, ca_key, EVP_sha256()) == 0) Die("sign");
  TestCert out{CertPem(cert), KeyPem(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  X509_free(ca_cert);
  EVP_PKEY_free(ca_key);
  return out;
}

void WriteTestFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out) Die("writing a test file");
}

PromtoolResult PromtoolCheckMetrics(const std::string& promtool,
                                    const std::string& exposition) {
  char path[] = "/tmp/navarch_metrics_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) Die("mkstemp");
  close(fd);
  WriteTestFile(path, exposition);
  PromtoolResult result;
  const std::string command =
      absl::StrCat(promtool, " check metrics < ", path, " 2>&1");
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) Die("popen");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) result.output.append(buf, n);
  const int status = pclose(p);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  unlink(path);
  return result;
}

}  // namespace navarch::testing
