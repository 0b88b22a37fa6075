//! A gRPC items service protected by tokengate.
//!
//! The gate's layer sits on tonic's server (`Server::builder().layer(…)`):
//! requests without a valid token never reach a handler and get
//! UNAUTHENTICATED (or UNAVAILABLE when the authorization server is down).
//! Handlers check scopes with `tokengate::tonic::require`, which answers
//! PERMISSION_DENIED.

use std::sync::Mutex;

use tokengate::TokenGate;
use tonic::{Request, Response, Status};

/// The generated protobuf and gRPC code.
pub mod pb {
    tonic::include_proto!("items.v1");
}

use pb::items_server::{Items, ItemsServer};
use pb::{CreateItemRequest, Item, ListItemsReply, ListItemsRequest};

tokengate::scope_set! {
    /// Listing items.
    pub struct ItemsRead = "items:read";
    /// Creating items.
    pub struct ItemsWrite = "items:write";
}

/// The service: a list of items in memory.
#[derive(Default)]
pub struct ItemsService {
    items: Mutex<Vec<Item>>,
}

#[tonic::async_trait]
impl Items for ItemsService {
    async fn list_items(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<ListItemsReply>, Status> {
        tokengate::tonic::require::<ItemsRead, _>(&request)?;
        let items = self
            .items
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .clone();
        Ok(Response::new(ListItemsReply { items }))
    }

    async fn create_item(
        &self,
        request: Request<CreateItemRequest>,
    ) -> Result<Response<Item>, Status> {
        let principal = tokengate::tonic::require::<ItemsWrite, _>(&request)?;
        let item = Item {
            name: request.into_inner().name,
            created_by: principal.client_id().unwrap_or_default().to_owned(),
        };
        self.items
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .push(item.clone());
        Ok(Response::new(item))
    }
}

/// Serves the items service on `listener` behind `gate`, until the future
/// is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: TokenGate,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(gate.layer())
        .add_service(ItemsServer::new(ItemsService::default()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
}

/// Serves the items service on `listener` over TLS with `tls` (which may
/// ask clients for a certificate: `ServerTlsConfig::client_ca_root`),
/// behind `gate`. With tokengate's `tonic-tls` feature the gate reads each
/// request's client certificate from tonic's `TlsConnectInfo`, so tokens
/// bound to a certificate (RFC 8705, `cnf["x5t#S256"]`) are accepted only
/// from the client holding it.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    gate: TokenGate,
    tls: tonic::transport::ServerTlsConfig,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .tls_config(tls)?
        .layer(gate.layer())
        .add_service(ItemsServer::new(ItemsService::default()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
}
