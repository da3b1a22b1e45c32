#include "tests/testing/test_certs.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>

namespace fhirgw::testing {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

std::string OpenSslError(const std::string& what) {
  std::string text = what;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    text += ": ";
    text += buffer;
  }
  return text;
}

KeyPtr NewKey() {
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr);
  if (ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 &&
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1) {
    EVP_PKEY_keygen(ctx, &key);
  }
  EVP_PKEY_CTX_free(ctx);
  return KeyPtr(key, EVP_PKEY_free);
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

std::string ToPem(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string ToPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// A certificate for `key` named `common_name`, valid from an hour ago for a day, not yet signed.
CertPtr NewCert(const std::string& common_name, EVP_PKEY* key, long serial) {
  CertPtr cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("fhirgw tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

}  // namespace

struct TestCa::State {
  KeyPtr key{nullptr, EVP_PKEY_free};
  CertPtr cert{nullptr, X509_free};
};

TestCa::~TestCa() = default;

std::unique_ptr<TestCa> TestCa::Create(const std::string& common_name, std::string* error) {
  std::unique_ptr<TestCa> ca(new TestCa());
  ca->state_ = std::make_unique<State>();
  ca->state_->key = NewKey();
  if (ca->state_->key == nullptr) {
    *error = OpenSslError("cannot make a CA key");
    return nullptr;
  }
  ca->state_->cert = NewCert(common_name, ca->state_->key.get(), ca->serial_++);
  X509* cert = ca->state_->cert.get();
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  if (!AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE") ||
      !AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !AddExtension(cert, cert, NID_subject_key_identifier, "hash") ||
      X509_sign(cert, ca->state_->key.get(), EVP_sha256()) == 0) {
    *error = OpenSslError("cannot make the CA certificate");
    return nullptr;
  }
  ca->self_.cert_pem = ToPem(cert);
  ca->self_.key_pem = ToPem(ca->state_->key.get());
  return ca;
}

KeyPair TestCa::Issue(const std::string& common_name, CertUse use,
                      const std::vector<std::string>& dns_names,
                      const std::vector<std::string>& ip_addresses) {
  KeyPtr key = NewKey();
  if (key == nullptr) {
    error_ = OpenSslError("cannot make a key");
    return {};
  }
  CertPtr cert = NewCert(common_name, key.get(), serial_++);
  X509* issuer = state_->cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  std::string san;
  for (const std::string& dns : dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + dns;
  for (const std::string& ip : ip_addresses) san += (san.empty() ? "IP:" : ",IP:") + ip;
  bool ok = AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE") &&
            AddExtension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature") &&
            AddExtension(cert.get(), issuer, NID_ext_key_usage,
                         use == CertUse::kServer ? "serverAuth" : "clientAuth") &&
            AddExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  if (ok && !san.empty()) ok = AddExtension(cert.get(), issuer, NID_subject_alt_name, san);
  if (!ok || X509_sign(cert.get(), state_->key.get(), EVP_sha256()) == 0) {
    error_ = OpenSslError("cannot issue a certificate for " + common_name);
    return {};
  }
  return KeyPair{ToPem(cert.get()), ToPem(key.get())};
}

std::string Sha256Hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  char buffer[3];
  for (unsigned char byte : digest) {
    std::snprintf(buffer, sizeof(buffer), "%02x", byte);
    hex += buffer;
  }
  return hex;
}

bool WriteEd25519Key(const std::string& path) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  EVP_PKEY* key = nullptr;
  const bool generated =
      ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &key) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!generated) return false;
  std::FILE* file = std::fopen(path.c_str(), "w");
  const bool written = file != nullptr &&
                       PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (file != nullptr) std::fclose(file);
  EVP_PKEY_free(key);
  std::error_code ec;
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace, ec);
  return written && !ec;
}

}  // namespace fhirgw::testing
