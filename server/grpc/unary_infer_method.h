// UnaryInferMethod: serves inference.GRPCInferenceService/ModelInfer on the request's raw
// bytes, so that a message which does not parse is answered INVALID_ARGUMENT with a message
// saying so, as on a ModelStreamInfer stream. (gRPC's generated synchronous handler parses
// the request itself and answers INTERNAL with an empty message when it cannot.)
//
// The generated service gives up its own ModelInfer (InferenceService derives from
// WithGenericMethod_ModelInfer); this service registers the same method path with a
// synchronous handler whose request type is grpc::ByteBuffer, through the handler classes
// that generated code itself uses. It borrows the InferenceService, which must outlive it;
// thread-safe as that service is.
//
// gRPC's ServerBuilder refuses a service with a method handed over this way unless a generic
// service is registered too; unknown_methods() is one that answers every method nobody
// serves UNIMPLEMENTED, as gRPC does without one.
//
//   InferenceService inference(&state);
//   UnaryInferMethod unary(&inference);
//   builder.RegisterService(&inference);
//   builder.RegisterService(&unary);
//   builder.RegisterCallbackGenericService(unary.unknown_methods());
#ifndef TORCHBRICKS_SERVER_GRPC_UNARY_INFER_METHOD_H_
#define TORCHBRICKS_SERVER_GRPC_UNARY_INFER_METHOD_H_

#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/impl/codegen/service_type.h"
#include "server/grpc/inference_service.h"

namespace torchbricks::server {

class UnaryInferMethod final : public grpc::Service {
 public:
  // The gRPC method this serves.
  static constexpr char kMethod[] = "/inference.GRPCInferenceService/ModelInfer";

  explicit UnaryInferMethod(InferenceService* inference);
  UnaryInferMethod(const UnaryInferMethod&) = delete;
  UnaryInferMethod& operator=(const UnaryInferMethod&) = delete;

  // Owned by this object; register it with the same server.
  grpc::CallbackGenericService* unknown_methods() { return &unknown_methods_; }

 private:
  grpc::CallbackGenericService unknown_methods_;  // its default answer: UNIMPLEMENTED
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_UNARY_INFER_METHOD_H_
