#include "gateway/store/log_codec.h"

#include "absl/strings/str_cat.h"
#include "gateway/store/store.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fhirgw::gateway {

absl::StatusOr<std::string> OpenPayload(const PayloadCipher* cipher, std::string stored) {
  if (cipher == nullptr) {
    if (IsEncryptedPayload(stored)) {
      return absl::FailedPreconditionError(
          "the payload is encrypted but no encryption key is configured");
    }
    return stored;
  }
  return cipher->Decrypt(stored);
}

std::string SealPayload(const PayloadCipher* cipher, absl::string_view plaintext) {
  if (cipher == nullptr || plaintext.empty()) return std::string(plaintext);
  return cipher->Encrypt(plaintext);
}

std::string Canonical(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

std::string ChainHash(absl::string_view previous, absl::string_view canonical) {
  return Sha256(absl::StrCat(previous, canonical));
}

}  // namespace fhirgw::gateway
