#include "gateway/security/crypto.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/file.h"
#include "fhir/status_macros.h"

namespace fhirgw::gateway {
namespace {

constexpr char kMagic[] = {'\0', 'F', 'G', '1'};
constexpr size_t kNonce = 12;
constexpr size_t kTag = 16;

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

absl::StatusOr<std::string> ReadKey(const v1::EncryptionConfig::Key& key) {
  std::string text;
  if (!key.key_file().empty()) {
    FHIRGW_ASSIGN_OR_RETURN(text, base::ReadFile(key.key_file()));
  } else if (!key.key_env().empty()) {
    const char* value = std::getenv(key.key_env().c_str());
    if (value == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("environment variable ", key.key_env(), " is not set"));
    }
    text = value;
  } else {
    return absl::InvalidArgumentError("needs key_file or key_env");
  }
  std::string raw;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(text), &raw) || raw.size() != 32) {
    return absl::InvalidArgumentError("must be 32 bytes, base64 (openssl rand -base64 32)");
  }
  return raw;
}

}  // namespace

bool IsEncryptedPayload(absl::string_view stored) {
  return stored.size() >= sizeof kMagic &&
         stored.substr(0, sizeof kMagic) == absl::string_view(kMagic, sizeof kMagic);
}

absl::StatusOr<std::shared_ptr<const PayloadCipher>> PayloadCipher::FromConfig(
    const v1::EncryptionConfig& config) {
  if (config.keys().empty()) return std::shared_ptr<const PayloadCipher>();
  std::map<std::string, std::string> keys;
  for (int i = 0; i < config.keys_size(); ++i) {
    const v1::EncryptionConfig::Key& key = config.keys(i);
    const std::string path = absl::StrCat("security.encryption.keys[", i, "]");
    if (key.id().empty() || key.id().size() > 64) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".id: 1 to 64 characters are required"));
    }
    absl::StatusOr<std::string> raw = ReadKey(key);
    if (!raw.ok()) {
      return absl::Status(raw.status().code(), absl::StrCat(path, ": ", raw.status().message()));
    }
    if (!keys.emplace(key.id(), *raw).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".id: '", key.id(), "' is used twice"));
    }
  }
  return FromKeys(std::move(keys), config.keys(0).id());
}

absl::StatusOr<std::shared_ptr<const PayloadCipher>> PayloadCipher::FromKeys(
    std::map<std::string, std::string> keys, std::string primary) {
  if (!keys.count(primary))
    return absl::InvalidArgumentError("the primary key is not among the keys");
  for (const auto& [id, key] : keys) {
    if (key.size() != 32)
      return absl::InvalidArgumentError(absl::StrCat("key ", id, " is not 32 bytes"));
  }
  return std::shared_ptr<const PayloadCipher>(
      new PayloadCipher(std::move(keys), std::move(primary)));
}

std::string PayloadCipher::Encrypt(absl::string_view plaintext) const {
  const std::string& key = keys_.at(primary_);
  std::string out(kMagic, sizeof kMagic);
  out.push_back(static_cast<char>(primary_.size()));
  out.append(primary_);
  unsigned char nonce[kNonce];
  RAND_bytes(nonce, kNonce);
  out.append(reinterpret_cast<const char*>(nonce), kNonce);
  const size_t header = out.size();
  out.resize(header + plaintext.size() + kTag);
  auto* dst = reinterpret_cast<unsigned char*>(out.data() + header);
  CipherCtx c;
  int len = 0;
  EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key.data()), nonce);
  // The header (key id) is authenticated too, so that a payload cannot be relabelled.
  EVP_EncryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(out.data()),
                    static_cast<int>(header));
  EVP_EncryptUpdate(c.ctx, dst, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                    static_cast<int>(plaintext.size()));
  int final_len = 0;
  EVP_EncryptFinal_ex(c.ctx, dst + len, &final_len);
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, kTag, dst + plaintext.size());
  return out;
}

absl::StatusOr<std::string> PayloadCipher::Decrypt(absl::string_view stored) const {
  if (!IsEncryptedPayload(stored)) return std::string(stored);
  if (stored.size() < sizeof kMagic + 1) return absl::DataLossError("truncated encrypted payload");
  const size_t id_len = static_cast<unsigned char>(stored[sizeof kMagic]);
  const size_t header = sizeof kMagic + 1 + id_len + kNonce;
  if (stored.size() < header + kTag) return absl::DataLossError("truncated encrypted payload");
  const std::string id(stored.substr(sizeof kMagic + 1, id_len));
  auto key = keys_.find(id);
  if (key == keys_.end()) {
    return absl::NotFoundError(
        absl::StrCat("payload encrypted with key '", id, "', which is not configured"));
  }
  const auto* nonce =
      reinterpret_cast<const unsigned char*>(stored.data() + sizeof kMagic + 1 + id_len);
  const size_t body = stored.size() - header - kTag;
  std::string plain(body, '\0');
  CipherCtx c;
  int len = 0;
  EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key->second.data()), nonce);
  EVP_DecryptUpdate(c.ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(stored.data()),
                    static_cast<int>(header));
  EVP_DecryptUpdate(c.ctx, reinterpret_cast<unsigned char*>(plain.data()), &len,
                    reinterpret_cast<const unsigned char*>(stored.data() + header),
                    static_cast<int>(body));
  std::string tag(stored.substr(header + body, kTag));
  EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, kTag, tag.data());
  int final_len = 0;
  if (EVP_DecryptFinal_ex(c.ctx, reinterpret_cast<unsigned char*>(plain.data()) + len,
                          &final_len) != 1) {
    return absl::DataLossError("encrypted payload does not verify (altered, or wrong key)");
  }
  return plain;
}

absl::StatusOr<std::shared_ptr<const HeadSigner>> HeadSigner::FromPrivateKeyFile(
    const std::string& path) {
  FHIRGW_ASSIGN_OR_RETURN(const std::string pem, base::ReadFile(path));
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  EVP_PKEY* key = bio == nullptr
                      ? nullptr
                      : PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>(""));
  if (key == nullptr || EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not an Ed25519 private key (openssl genpkey -algorithm ed25519)"));
  }
  auto signer = std::shared_ptr<HeadSigner>(new HeadSigner());
  signer->key_ = key;
  unsigned char pub[32];
  size_t pub_len = sizeof pub;
  EVP_PKEY_get_raw_public_key(key, pub, &pub_len);
  signer->key_id_ = absl::BytesToHexString(
      base::Sha256(absl::string_view(reinterpret_cast<const char*>(pub), pub_len)).substr(0, 8));
  return std::shared_ptr<const HeadSigner>(std::move(signer));
}

HeadSigner::~HeadSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

std::string HeadSigner::Sign(absl::string_view message) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::string signature(64, '\0');
  size_t len = signature.size();
  EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_));
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &len,
                 reinterpret_cast<const unsigned char*>(message.data()), message.size());
  EVP_MD_CTX_free(ctx);
  signature.resize(len);
  return signature;
}

bool HeadSigner::Verify(absl::string_view message, absl::string_view signature) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_));
  const int ok = EVP_DigestVerify(
      ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(message.data()), message.size());
  EVP_MD_CTX_free(ctx);
  return ok == 1;
}

std::string HeadMessage(int64_t sequence, absl::string_view hash) {
  return absl::StrCat("fhirgw-log-head:", sequence, ":", absl::BytesToHexString(hash));
}

}  // namespace fhirgw::gateway
