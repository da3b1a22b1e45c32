// Throwaway X.509 material for TLS tests, made with OpenSSL in memory: a CA, and server and client
// certificates it signs (EC P-256 keys, valid from an hour ago for a day).
//
//   std::string error;
//   std::unique_ptr<TestCa> ca = TestCa::Create("fhirgw test CA", &error);
//   KeyPair server = ca->Issue("localhost", CertUse::kServer, {"localhost"}, {"127.0.0.1"});
//   KeyPair client = ca->Issue("lakeside-emr", CertUse::kClient);
//   WriteFile(dir + "/ca.pem", ca->cert_pem());  // files.h
#ifndef FHIRGW_TESTS_TESTING_TEST_CERTS_H_
#define FHIRGW_TESTS_TESTING_TEST_CERTS_H_

#include <memory>
#include <string>
#include <vector>

namespace fhirgw::testing {

// A certificate and its private key, both PEM.
struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

enum class CertUse { kServer, kClient };

class TestCa {
 public:
  // Makes a self-signed CA with subject CN `common_name`; nullptr (with `*error`) on failure.
  static std::unique_ptr<TestCa> Create(const std::string& common_name, std::string* error);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  // Issues a certificate for `common_name` with the extended key usage of `use` and the given
  // subjectAltName DNS names and IP addresses. An empty cert_pem means failure (see error()).
  KeyPair Issue(const std::string& common_name, CertUse use,
                const std::vector<std::string>& dns_names = {},
                const std::vector<std::string>& ip_addresses = {});

  const std::string& cert_pem() const { return self_.cert_pem; }
  const std::string& key_pem() const { return self_.key_pem; }
  // Why the last Issue failed.
  const std::string& error() const { return error_; }

 private:
  TestCa() = default;
  struct State;
  std::unique_ptr<State> state_;
  KeyPair self_;
  std::string error_;
  long serial_ = 1;
};

// Writes a new Ed25519 private key (PEM, mode 0600) to `path`, as `openssl genpkey -algorithm
// ed25519` would: the key that signs the transaction log's heads.
bool WriteEd25519Key(const std::string& path);

// The SHA-256 of `text` as 64 lower-case hex digits (what `sha256sum` prints).
std::string Sha256Hex(const std::string& text);

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_TEST_CERTS_H_
