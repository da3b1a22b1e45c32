#include "base/digest.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::base {
namespace {

std::string Hex(const Sha1Digest& digest) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

// The FIPS 180 examples, the one-million-'a' message and lengths around the block (64 bytes) and
// padding (56 bytes) boundaries; expected values from Python's hashlib.
struct Vector {
  std::string message;
  const char* sha1;
  const char* sha256;
};

std::vector<Vector> KnownVectors() {
  return {
      {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::string(1'000'000, 'a'), "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
      {"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
       "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"},
      {std::string(55, 'a'), "c1c8bbdc22796e28c0e15163d20899b65621d65a",
       "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {std::string(56, 'a'), "c2db330f6083854c99d4b5bfb6e8f29f201be699",
       "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {std::string(63, 'a'), "03f09f5b158a7a8cdad920bddc29b81c18a551f5",
       "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {std::string(64, 'a'), "0098ba824b5c16427bd7a1122a5a442a25ec644d",
       "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {std::string(65, 'a'), "11655326c708d70319be2610e8a57d9a5b959d3b",
       "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {std::string(119, 'a'), "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56",
       "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {std::string(120, 'a'), "f34c1488385346a55709ba056ddd08280dd4c6d6",
       "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {std::string(128, 'a'), "ad5b3fdbcb526778c2839d2f151ea753995e26a0",
       "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
  };
}

TEST(Sha1Test, KnownVectors) {
  for (const Vector& v : KnownVectors()) {
    SCOPED_TRACE(v.message.size());
    EXPECT_EQ(Hex(Sha1(v.message)), v.sha1);
  }
}

TEST(Sha256Test, KnownVectors) {
  for (const Vector& v : KnownVectors()) {
    SCOPED_TRACE(v.message.size());
    const std::string digest = Sha256(v.message);
    EXPECT_EQ(digest.size(), kSha256Bytes);
    EXPECT_EQ(absl::BytesToHexString(digest), v.sha256);
  }
}

// Hashing parts must equal hashing their concatenation, wherever the cuts fall (inside a block,
// on a block boundary, empty parts).
TEST(Sha1Test, PartsHashAsTheirConcatenation) {
  std::string data;
  for (int i = 0; i < 150; ++i) data.push_back(static_cast<char>('a' + i % 26));
  const absl::string_view all = data;
  const std::string expected = Hex(Sha1(all));
  for (size_t cut = 0; cut <= all.size(); ++cut) {
    SCOPED_TRACE(cut);
    EXPECT_EQ(Hex(Sha1({all.substr(0, cut), all.substr(cut)})), expected);
    EXPECT_EQ(Hex(Sha1({all.substr(0, cut / 2), "", all.substr(cut / 2, cut - cut / 2),
                        all.substr(cut)})),
              expected);
  }
  EXPECT_EQ(Hex(Sha1({"ab", "c"})), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Hex(Sha1(std::initializer_list<absl::string_view>{})),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

// One digest after another on the same thread (which reuses its OpenSSL context), alternating
// algorithms, and on several threads at once, each give the digest of their own input.
TEST(DigestTest, ContextReuseAndThreads) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Hex(Sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(absl::BytesToHexString(Sha256("abc")),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  }
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 2000; ++i) {
        if (t % 2 == 0 && Hex(Sha1("abc")) != "a9993e364706816aba3e25717850c26c9cd0d89d") {
          ++failures[t];
        }
        if (t % 2 == 1 && absl::BytesToHexString(Sha256("")) !=
                              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(failures, ::testing::Each(0));
}

}  // namespace
}  // namespace fhirgw::base
