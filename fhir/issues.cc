#include "fhir/issues.h"

#include "absl/strings/str_cat.h"

namespace fhirgw::fhir {

IssueScope IssueScope::Field(absl::string_view field) const {
  if (prefix_.empty()) return IssueScope(*issues_, std::string(field));
  return IssueScope(*issues_, absl::StrCat(prefix_, ".", field));
}

IssueScope IssueScope::Field(absl::string_view field, int index) const {
  IssueScope scope = Field(field);
  absl::StrAppend(&scope.prefix_, "[", index, "]");
  return scope;
}

void IssueScope::Error(absl::string_view field, absl::string_view message) const {
  Add(field, message, Issue::Severity::kError);
}

void IssueScope::Warning(absl::string_view field, absl::string_view message) const {
  Add(field, message, Issue::Severity::kWarning);
}

void IssueScope::Add(absl::string_view field, absl::string_view message,
                     Issue::Severity severity) const {
  std::string path = field.empty() ? prefix_ : Field(field).prefix_;
  issues_->push_back(Issue{std::move(path), std::string(message), severity});
}

bool HasErrors(const IssueList& issues) {
  for (const Issue& issue : issues) {
    if (issue.severity == Issue::Severity::kError) return true;
  }
  return false;
}

std::string FormatIssues(const IssueList& issues) {
  std::string out;
  for (const Issue& issue : issues) {
    absl::StrAppend(&out, issue.path.empty() ? "record" : issue.path, ": ", issue.message,
                    issue.severity == Issue::Severity::kWarning ? " (warning)" : "", "\n");
  }
  return out;
}

absl::Status IssuesToStatus(const IssueList& issues) {
  std::string message;
  for (const Issue& issue : issues) {
    if (issue.severity != Issue::Severity::kError) continue;
    absl::StrAppend(&message, message.empty() ? "" : "; ",
                    issue.path.empty() ? "record" : issue.path, ": ", issue.message);
  }
  if (message.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(message);
}

Json OperationOutcome(const IssueList& issues, absl::string_view code, JsonAlloc& alloc) {
  Json outcome = Json::Object(alloc);
  outcome.Str("resourceType", "OperationOutcome");
  Json list = Json::Array(alloc);
  for (const Issue& issue : issues) {
    const char* severity = issue.severity == Issue::Severity::kError     ? "error"
                           : issue.severity == Issue::Severity::kWarning ? "warning"
                                                                         : "information";
    Json entry = Json::Object(alloc);
    entry.Str("severity", severity).Str("code", code).Str("diagnostics", issue.message);
    if (!issue.path.empty()) entry.Put("expression", Json::Array(alloc).PushStr(issue.path));
    list.Push(std::move(entry));
  }
  outcome.Put("issue", std::move(list));
  return outcome;
}

}  // namespace fhirgw::fhir
