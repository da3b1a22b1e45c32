// ClinicGateway.WatchInbound: a server stream of the hospital data logged for one clinic.
//
// Events come in log order, each with its cursor (the log sequence). A client that reconnects with
// the last cursor it saw continues exactly after it: no gaps, no duplicates, whichever gateway it
// reaches. A stream only ever carries the requested clinic's records.
#ifndef FHIRGW_GATEWAY_SERVICE_WATCH_INBOUND_H_
#define FHIRGW_GATEWAY_SERVICE_WATCH_INBOUND_H_

#include "fhirgw/v1/gateway.grpc.pb.h"
#include "gateway/inbound/inbound_hub.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

// Starts the stream for `request`; the reactor deletes itself when done. Errors (bad cursor, no
// clinic) finish the stream at once with INVALID_ARGUMENT.
grpc::ServerWriteReactor<v1::InboundEvent>* StartWatchInbound(
    Store& store, InboundHub& hub, const v1::WatchInboundRequest& request);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SERVICE_WATCH_INBOUND_H_
