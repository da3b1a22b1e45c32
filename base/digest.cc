#include "base/digest.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "base/openssl_error.h"

namespace fhirgw::base {
namespace {

// The default provider always has SHA-1 and SHA-256, so a failure here is a broken OpenSSL
// installation, not something a caller could handle.
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "fhirgw: %s failed: %s\n", what, OpenSslErrors().c_str());
  std::abort();
}

// Fetches `name` once: EVP_sha1() and the one-shot SHA1() look the algorithm up on every call.
const EVP_MD* Fetch(const char* name) {
  EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  if (md == nullptr) Fatal(name);
  return md;
}

const EVP_MD* Sha1Md() {
  static const EVP_MD* const kMd = Fetch("SHA1");
  return kMd;
}

const EVP_MD* Sha256Md() {
  static const EVP_MD* const kMd = Fetch("SHA256");
  return kMd;
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// Writes the digest of the concatenation of `parts` with `md` to `out`. Each thread reuses one
// context, which saves an allocation per digest.
void Digest(const EVP_MD* md, std::initializer_list<absl::string_view> parts, unsigned char* out) {
  thread_local const std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) Fatal("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1) Fatal("EVP_DigestInit_ex2");
  for (absl::string_view part : parts) {
    if (EVP_DigestUpdate(ctx.get(), part.data(), part.size()) != 1) Fatal("EVP_DigestUpdate");
  }
  if (EVP_DigestFinal_ex(ctx.get(), out, nullptr) != 1) Fatal("EVP_DigestFinal_ex");
}

}  // namespace

Sha1Digest Sha1(std::initializer_list<absl::string_view> parts) {
  Sha1Digest digest;
  Digest(Sha1Md(), parts, digest.data());
  return digest;
}

std::string Sha256(absl::string_view data) {
  std::string digest(kSha256Bytes, '\0');
  Digest(Sha256Md(), {data}, reinterpret_cast<unsigned char*>(digest.data()));
  return digest;
}

}  // namespace fhirgw::base
