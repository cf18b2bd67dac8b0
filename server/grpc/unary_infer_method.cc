#include "server/grpc/unary_infer_method.h"

#include "grpcpp/impl/codegen/rpc_service_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/method_handler.h"

namespace torchbricks::server {

UnaryInferMethod::UnaryInferMethod(InferenceService* inference) {
  using Handler = grpc::internal::RpcMethodHandler<InferenceService, grpc::ByteBuffer,
                                                   inference::ModelInferResponse>;
  AddMethod(new grpc::internal::RpcServiceMethod(
      kMethod, grpc::internal::RpcMethod::NORMAL_RPC,
      new Handler(
          [](InferenceService* service, grpc::ServerContext* context,
             const grpc::ByteBuffer* request, inference::ModelInferResponse* response) {
            return service->ModelInferBytes(context, request, response);
          },
          inference)));
}

}  // namespace torchbricks::server
