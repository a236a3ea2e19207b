// TLS for the control plane's listeners, from server.tls. The files are read
// and checked once at start-up (a key that does not match its certificate is
// an error then, not a failed handshake later); both listeners serve the same
// material.
#ifndef NAVARCH_CONTROLPLANE_TLS_H_
#define NAVARCH_CONTROLPLANE_TLS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "navarch/config/config.h"
#include "openssl/ssl.h"

namespace navarch {

struct TlsMaterial {
  std::string cert_chain_pem;   // the server certificate first
  std::string private_key_pem;  // of the first certificate
  std::string client_ca_pem;    // empty: client certificates are not asked
  bool mutual() const { return !client_ca_pem.empty(); }
};

// Reads and checks the files: PEM certificates, a private key that matches
// the first certificate, and a CA bundle with at least one certificate.
// FAILED_PRECONDITION naming the file and the problem.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsConfig& config);

// gRPC credentials: TLS, and with a client CA, a client certificate it signed
// is required (REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
std::shared_ptr<grpc::ServerCredentials> GrpcServerCredentials(
    const TlsMaterial& tls);

// Sets up an OpenSSL server context for the HTTP listener: TLS 1.2 or newer,
// the chain and key, and with a client CA, client certificates are asked for
// and verified when presented (not required by the handshake: the HTTP
// server requires them per request, so that probes and scrapers without one
// still reach /healthz, /readyz and /metrics). False on failure.
bool ConfigureServerContext(const TlsMaterial& tls, SSL_CTX* ctx);

// The common name and DNS subject alternative names of the verified peer
// certificate of a connection; empty when there is none.
std::vector<std::string> PeerCertificateNames(const SSL* ssl);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_TLS_H_
