// RapidJSON helpers for tests that inspect the JSON the code under test wrote.
//
//   rapidjson::Document doc = ParseJsonOrFail(WriteJson(bundle.value(), JsonStyle::kCompact));
//   EXPECT_EQ(Str(doc, "resourceType"), "Bundle");
#ifndef FHIRGW_TESTS_TESTING_JSON_H_
#define FHIRGW_TESTS_TESTING_JSON_H_

#include <string>

#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace fhirgw::testing {

// Parses `text`; adds a test failure with the error offset and the text when it is not JSON.
inline rapidjson::Document ParseJsonOrFail(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << "offset " << doc.GetErrorOffset() << " in: " << text;
  return doc;
}

// Returns the string member `key` of `value`; adds a test failure and returns "" when `value` is
// not an object or has no such string member.
inline std::string Str(const rapidjson::Value& value, const char* key) {
  if (!value.IsObject() || !value.HasMember(key) || !value[key].IsString()) {
    ADD_FAILURE() << "no string member " << key;
    return "";
  }
  return std::string(value[key].GetString(), value[key].GetStringLength());
}

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_JSON_H_
