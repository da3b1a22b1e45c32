// For the parameterised tests driven by files in the repository (goldens, examples): test names
// made from file names, and the switch that rewrites goldens.
//
//   INSTANTIATE_TEST_SUITE_P(Golden, GoldenTest, ::testing::ValuesIn(Cases()),
//                            [](const auto& info) { return ParamName(info.param.name); });
//   if (UpdateGoldens()) { WriteFile(golden_path, actual); return; }
#ifndef FHIRGW_TESTS_TESTING_PARAM_NAMES_H_
#define FHIRGW_TESTS_TESTING_PARAM_NAMES_H_

#include <cctype>
#include <cstdlib>
#include <string>

namespace fhirgw::testing {

// Returns `name` with every character that is not a letter or a digit replaced by '_', as
// GoogleTest requires of a parameter's name ("MedicationRequest-medrx0302" ->
// "MedicationRequest_medrx0302").
inline std::string ParamName(std::string name) {
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

// True when the environment has FHIRGW_UPDATE_GOLDENS=1: golden tests then rewrite their files
// instead of comparing (review the diff).
inline bool UpdateGoldens() {
  const char* update = std::getenv("FHIRGW_UPDATE_GOLDENS");
  return update != nullptr && std::string(update) == "1";
}

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_PARAM_NAMES_H_
