// FHIRGW_RETURN_IF_ERROR and FHIRGW_ASSIGN_OR_RETURN: early returns for absl::Status / StatusOr.
//
//   FHIRGW_RETURN_IF_ERROR(store.Append(entry));
//   FHIRGW_ASSIGN_OR_RETURN(DateTime when, ParseDateTime(text));
#ifndef FHIRGW_FHIR_STATUS_MACROS_H_
#define FHIRGW_FHIR_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FHIRGW_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status fhirgw_status_ = (expr);          \
    if (!fhirgw_status_.ok()) return fhirgw_status_; \
  } while (false)

#define FHIRGW_STATUS_CONCAT_INNER_(a, b) a##b
#define FHIRGW_STATUS_CONCAT_(a, b) FHIRGW_STATUS_CONCAT_INNER_(a, b)

#define FHIRGW_ASSIGN_OR_RETURN(lhs, expr) \
  FHIRGW_ASSIGN_OR_RETURN_IMPL_(FHIRGW_STATUS_CONCAT_(fhirgw_statusor_, __LINE__), lhs, expr)

#define FHIRGW_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // FHIRGW_FHIR_STATUS_MACROS_H_
