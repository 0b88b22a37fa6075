const SCOPE: &str = "items:read";

#[tokengate::require_scopes(SCOPE)]
async fn handler() {}

fn main() {}
