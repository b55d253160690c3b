//! The SDK's relay page.

use crate::app::AppState;
use crate::flows::{self};
use crate::web::extract::ClientIdParam;
use axum::extract::State;
use axum::response::Response;

pub async fn sdk_relay(
    State(state): State<AppState>,
    ClientIdParam(client_id): ClientIdParam,
) -> Response {
    flows::sdk::relay(&state, &client_id).await
}
