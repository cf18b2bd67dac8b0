// The project's status-propagation macros (this abseil release ships none). Header-only;
// they expand in the caller, so they are as thread-safe as the expressions given to them.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(std::unique_ptr<Foo> foo, Foo::Create(options));
#ifndef TORCHBRICKS_BASE_STATUS_MACROS_H_
#define TORCHBRICKS_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TB_STATUS_CONCAT_INNER_(a, b) a##b
#define TB_STATUS_CONCAT_(a, b) TB_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function when not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    const ::absl::Status tb_status_ = (expr); \
    if (!tb_status_.ok()) return tb_status_;  \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when not OK, otherwise
// moves the value into `lhs` (a declaration or an existing variable).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(TB_STATUS_CONCAT_(tb_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // TORCHBRICKS_BASE_STATUS_MACROS_H_
