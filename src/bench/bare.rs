//! A bare warp server that answers every product query with one fixed reply: what the front
//! end's cached query is measured against, in the same run, so that what the front end does of
//! its own per request (routing, its cache, its metrics, its connection handling) shows as the
//! gap between the two.

use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::oneshot;
use warp::Filter;

use crate::tool_error::{Result, ToolError};
use crate::wire::{Data, Product, CACHE_HEADER};

/// A bare warp server on a loopback port, on a runtime of its own built as a service's is (the
/// default multi-thread runtime). Stopped when dropped.
pub struct BareServer {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BareServer {
    /// Starts a server whose every `GET /products/{name}` gets the body a front end gives for
    /// `product` from its cache, with the same headers.
    pub fn start(product: &Product) -> Result<Self> {
        let body = Bytes::from(
            serde_json::to_vec(&Data {
                data: product.clone(),
            })
            .map_err(|e| ToolError::cannot("encode the bare server's reply", e))?,
        );
        let cannot = |e: std::io::Error| ToolError::cannot("start a bare server", e);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(cannot)?;
        listener.set_nonblocking(true).map_err(cannot)?;
        let url = format!("http://{}", listener.local_addr().map_err(cannot)?);
        let runtime = tokio::runtime::Runtime::new().map_err(cannot)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bare-warp".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let route = warp::get().and(warp::path!("products" / String)).map(
                        move |_name: String| {
                            let mut reply = warp::http::Response::new(body.clone());
                            let headers = reply.headers_mut();
                            headers.insert(
                                warp::http::header::CONTENT_TYPE,
                                warp::http::HeaderValue::from_static("application/json"),
                            );
                            headers
                                .insert(CACHE_HEADER, warp::http::HeaderValue::from_static("hit"));
                            reply
                        },
                    );
                    warp::serve(route)
                        .incoming(listener)
                        .graceful(async move {
                            let _ = stopped.await;
                        })
                        .run()
                        .await;
                });
            })
            .map_err(cannot)?;
        Ok(BareServer {
            url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
