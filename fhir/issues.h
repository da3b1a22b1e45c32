// Collecting data problems by path, and reporting them as text or as a FHIR OperationOutcome.
//
// A returned absl::Status means "could not finish"; problems in the data itself are collected here,
// each with the path of the element it concerns, so that every problem is reported at once.
//
//   IssueList issues;
//   IssueScope infusion = IssueScope(issues).Field("infusion");
//   infusion.Field("vitals", 1).Error("spo2_percent", "140 is outside 50..100");
//   // issues[0].path == "infusion.vitals[1].spo2_percent"
#ifndef FHIRGW_FHIR_ISSUES_H_
#define FHIRGW_FHIR_ISSUES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fhir/json.h"

namespace fhirgw::fhir {

struct Issue {
  enum class Severity { kError, kWarning, kInformation };
  std::string path;
  std::string message;
  Severity severity = Severity::kError;
};

using IssueList = std::vector<Issue>;

// A path prefix into a message or resource. Cheap to copy; writes into the IssueList it was made
// from.
class IssueScope {
 public:
  explicit IssueScope(IssueList& issues, std::string prefix = "")
      : issues_(&issues), prefix_(std::move(prefix)) {}

  // Returns the scope of `field` (or `field[index]`) below this one.
  IssueScope Field(absl::string_view field) const;
  IssueScope Field(absl::string_view field, int index) const;

  // Records an error (or warning) at `field` below this scope; an empty `field` means this scope.
  void Error(absl::string_view field, absl::string_view message) const;
  void Warning(absl::string_view field, absl::string_view message) const;

  const std::string& path() const { return prefix_; }

 private:
  void Add(absl::string_view field, absl::string_view message, Issue::Severity severity) const;

  IssueList* issues_;
  std::string prefix_;
};

bool HasErrors(const IssueList& issues);

// Formats each issue as "path: message", one a line (the CLI's stderr format).
std::string FormatIssues(const IssueList& issues);

// Returns InvalidArgument whose message lists every error as "path: message", separated by "; ".
absl::Status IssuesToStatus(const IssueList& issues);

// Builds an OperationOutcome resource; each issue's path goes in `expression`, `code` is the FHIR
// issue-type code ("invalid", "required", "not-supported", ...).
Json OperationOutcome(const IssueList& issues, absl::string_view code, JsonAlloc& alloc);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_ISSUES_H_
