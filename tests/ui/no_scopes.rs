#[tokengate::require_scopes()]
async fn handler() {}

fn main() {}
