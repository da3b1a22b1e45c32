// Protecting PHI at rest and proving the log unaltered.
//
// PayloadCipher encrypts stored payloads (records, FHIR, EHR answers) with AES-256-GCM. Each
// ciphertext names the key that made it, so after a rotation (a new first key) old payloads still
// decrypt with the older keys, which stay configured until no payload uses them.
//
//   FHIRGW_ASSIGN_OR_RETURN(auto cipher,
//   PayloadCipher::FromConfig(config.security().encryption())); std::string stored =
//   cipher->Encrypt(plaintext); FHIRGW_ASSIGN_OR_RETURN(std::string back, cipher->Decrypt(stored));
//
// HeadSigner signs the hash-chain head with Ed25519, so that a truncated log is detected.
#ifndef FHIRGW_GATEWAY_SECURITY_CRYPTO_H_
#define FHIRGW_GATEWAY_SECURITY_CRYPTO_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/config.pb.h"

namespace fhirgw::gateway {

class PayloadCipher {
 public:
  // Returns nullptr (no encryption) when `config` has no keys. Keys are 32 bytes, base64, read from
  // their file or environment variable; errors name the key.
  static absl::StatusOr<std::shared_ptr<const PayloadCipher>> FromConfig(
      const v1::EncryptionConfig& config);
  // For tests: `keys` maps key ids to 32 raw bytes; `primary` encrypts.
  static absl::StatusOr<std::shared_ptr<const PayloadCipher>> FromKeys(
      std::map<std::string, std::string> keys, std::string primary);

  // Returns "\0FG1" | key id length | key id | 12-byte nonce | ciphertext | 16-byte tag.
  std::string Encrypt(absl::string_view plaintext) const;
  // Decrypts what Encrypt made; other input (a plaintext payload from before encryption was turned
  // on) is returned unchanged. DataLoss when the tag does not verify, NotFound for an unknown key
  // id.
  absl::StatusOr<std::string> Decrypt(absl::string_view stored) const;

  const std::string& primary_key_id() const { return primary_; }

 private:
  PayloadCipher(std::map<std::string, std::string> keys, std::string primary)
      : keys_(std::move(keys)), primary_(std::move(primary)) {}
  std::map<std::string, std::string> keys_;
  std::string primary_;
};

// True when `stored` was produced by PayloadCipher::Encrypt.
bool IsEncryptedPayload(absl::string_view stored);

class HeadSigner {
 public:
  // Loads an Ed25519 private key (PEM, e.g. `openssl genpkey -algorithm ed25519`).
  static absl::StatusOr<std::shared_ptr<const HeadSigner>> FromPrivateKeyFile(
      const std::string& path);
  ~HeadSigner();

  std::string Sign(absl::string_view message) const;
  bool Verify(absl::string_view message, absl::string_view signature) const;
  // The first 8 bytes of SHA-256 of the public key, hex.
  const std::string& key_id() const { return key_id_; }

 private:
  HeadSigner() = default;
  void* key_ = nullptr;  // EVP_PKEY*
  std::string key_id_;
};

// The message a chain head signature covers: "fhirgw-log-head:<sequence>:<hex hash>".
std::string HeadMessage(int64_t sequence, absl::string_view hash);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SECURITY_CRYPTO_H_
