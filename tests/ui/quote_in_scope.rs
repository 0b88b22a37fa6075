#[tokengate::require_scopes(any("items:read", "say\"hi\""))]
async fn handler() {}

fn main() {}
