#include "navarch/controlplane/tls.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "openssl/err.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

namespace navarch {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("server.tls.", what, ": cannot read ", path));
  }
  std::ostringstream data;
  data << in.rdbuf();
  if (data.str().size() > (1 << 20)) {
    return absl::FailedPreconditionError(
        absl::StrCat("server.tls.", what, ": ", path, " is larger than 1 MiB"));
  }
  return data.str();
}

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::vector<X509Ptr> ParseCertificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemoryBio(pem);
  while (true) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the input reads as an error
  return certs;
}

KeyPtr ParseKey(const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return key;
}

void AddUnique(std::vector<std::string>* names, std::string name) {
  if (name.empty()) return;
  for (const std::string& n : *names) {
    if (n == name) return;
  }
  names->push_back(std::move(name));
}

std::string Utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) return "";
  std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return result;
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsConfig& config) {
  TlsMaterial m;
  absl::StatusOr<std::string> cert = ReadFile(config.cert_file, "cert_file");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(config.key_file, "key_file");
  if (!key.ok()) return key.status();
  std::vector<X509Ptr> chain = ParseCertificates(*cert);
  if (chain.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "server.tls.cert_file: no PEM certificate in ", config.cert_file));
  }
  KeyPtr pkey = ParseKey(*key);
  if (pkey == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("server.tls.key_file: no PEM private key in ",
                     config.key_file, " (encrypted keys are not supported)"));
  }
  if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::FailedPreconditionError(absl::StrCat(
        "server.tls.key_file: ", config.key_file,
        " is not the key of the certificate in ", config.cert_file));
  }
  m.cert_chain_pem = std::move(*cert);
  m.private_key_pem = std::move(*key);
  if (!config.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadFile(config.client_ca_file, "client_ca_file");
    if (!ca.ok()) return ca.status();
    if (ParseCertificates(*ca).empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("server.tls.client_ca_file: no PEM certificate in ",
                       config.client_ca_file));
    }
    m.client_ca_pem = std::move(*ca);
  }
  return m;
}

std::shared_ptr<grpc::ServerCredentials> GrpcServerCredentials(
    const TlsMaterial& tls) {
  grpc::SslServerCredentialsOptions options(
      tls.mutual() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_root_certs = tls.client_ca_pem;
  options.pem_key_cert_pairs.push_back(
      {tls.private_key_pem, tls.cert_chain_pem});
  return grpc::SslServerCredentials(options);
}

bool ConfigureServerContext(const TlsMaterial& tls, SSL_CTX* ctx) {
  std::vector<X509Ptr> chain = ParseCertificates(tls.cert_chain_pem);
  KeyPtr key = ParseKey(tls.private_key_pem);
  if (chain.empty() || key == nullptr) return false;
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return false;
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate(ctx, chain.front().get()) != 1) return false;
  for (size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) return false;
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) return false;
  if (SSL_CTX_check_private_key(ctx) != 1) return false;
  if (tls.mutual()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (X509Ptr& ca : ParseCertificates(tls.client_ca_pem)) {
      if (X509_STORE_add_cert(store, ca.get()) != 1) return false;
      // Tells clients which CAs we accept, so they pick the right cert.
      if (SSL_CTX_add_client_CA(ctx, ca.get()) != 1) return false;
    }
    // Without a verify callback, a certificate that fails verification ends
    // the handshake; a missing one does not (see the header).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // Session resumption would need a session id context with client
    // verification; without resumption there is nothing to get wrong.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  ERR_clear_error();
  return true;
}

std::vector<std::string> PeerCertificateNames(const SSL* ssl) {
  std::vector<std::string> names;
  if (ssl == nullptr) return names;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return names;
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    AddUnique(
        &names,
        Utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index))));
  }
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type == GEN_DNS) AddUnique(&names, Utf8(n->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
  }
  return names;
}

}  // namespace navarch
