//! `#[require_scopes(...)]` for axum handlers: the proc-macro half of
//! [tokengate](https://docs.rs/tokengate). Use it through
//! `tokengate::require_scopes` (feature `macros`).

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprCall, ExprLit, FnArg, ItemFn, Lit, LitStr, Token, parse_macro_input};

/// Requires scopes of the token for an axum handler.
///
/// `#[require_scopes("a", "b")]` (or `all("a", "b")`) needs every scope;
/// `#[require_scopes(any("a", "b"))]` needs one (a refusal names the first,
/// `scope="a"`, since RFC 6750 §3 reads a list as "all of these"). The
/// handler gains a leading
/// `tokengate::axum::Scoped<…>` extractor, so principals without the scopes
/// get 403 `insufficient_scope` before the handler runs, and requests without
/// a principal get 401. Each scope must be RFC 6749 §3.3 syntax, checked here
/// at compile time.
#[proc_macro_attribute]
pub fn require_scopes(attr: TokenStream, item: TokenStream) -> TokenStream {
    let handler = parse_macro_input!(item as ItemFn);
    match expand(attr.into(), handler) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(
    attr: proc_macro2::TokenStream,
    mut handler: ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let args = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(attr)?;
    let (any, scopes) = scopes(&args)?;
    if let Some(receiver) = handler
        .sig
        .inputs
        .iter()
        .find(|a| matches!(a, FnArg::Receiver(_)))
    {
        return Err(syn::Error::new(
            receiver.span(),
            "#[require_scopes] works on free-standing handler functions, not methods",
        ));
    }
    // The scope syntax is checked by the library's own `is_scope_token`, in
    // a constant the compiler evaluates: one rule, so the attribute cannot
    // drift from what the crate accepts at run time. Spanned on the literal,
    // so the error points at the bad scope.
    let checks = scopes.iter().map(|lit| {
        let message = format!(
            "{:?} is not an RFC 6749 §3.3 scope: one or more visible ASCII characters other than '\"' and '\\', no spaces",
            lit.value()
        )
        .replace('{', "{{")
        .replace('}', "}}");
        quote_spanned! {lit.span()=>
            const _: () = ::core::assert!(::tokengate::is_scope_token(#lit), #message);
        }
    });
    let marker = format_ident!("__TokengateScopes_{}", handler.sig.ident);
    let vis = &handler.vis;
    let guard: FnArg = syn::parse_quote! { _: ::tokengate::axum::Scoped<#marker> };
    handler.sig.inputs.insert(0, guard);
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy)]
        #vis struct #marker;

        impl ::tokengate::ScopeSet for #marker {
            const SCOPES: &'static [&'static str] = &[#(#scopes),*];
            const ANY: bool = #any;
        }

        #(#checks)*

        #handler
    })
}

/// `("a", "b")`, `(all("a", "b"))` or `(any("a", "b"))`.
fn scopes(args: &Punctuated<Expr, Token![,]>) -> syn::Result<(bool, Vec<LitStr>)> {
    if let [
        Expr::Call(ExprCall {
            func, args: inner, ..
        }),
    ] = args.iter().collect::<Vec<_>>().as_slice()
    {
        let any = match func.as_ref() {
            Expr::Path(p) if p.path.is_ident("any") => true,
            Expr::Path(p) if p.path.is_ident("all") => false,
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected scope strings, `all(\"…\", …)` or `any(\"…\", …)`",
                ));
            }
        };
        return Ok((any, literals(inner, func.span())?));
    }
    Ok((false, literals(args, Span::call_site())?))
}

fn literals(args: &Punctuated<Expr, Token![,]>, span: Span) -> syn::Result<Vec<LitStr>> {
    if args.is_empty() {
        return Err(syn::Error::new(
            span,
            "#[require_scopes] needs at least one scope",
        ));
    }
    args.iter()
        .map(|arg| match arg {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(s.clone()),
            other => Err(syn::Error::new(
                other.span(),
                "expected a scope string literal",
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(attr: proc_macro2::TokenStream, handler: ItemFn) -> String {
        expand(attr, handler).unwrap_err().to_string()
    }

    fn handler() -> ItemFn {
        syn::parse_quote! { async fn handler() {} }
    }

    #[test]
    fn no_scope_is_an_error() {
        assert_eq!(
            error(quote!(), handler()),
            "#[require_scopes] needs at least one scope"
        );
        assert_eq!(
            error(quote!(any()), handler()),
            "#[require_scopes] needs at least one scope"
        );
    }

    #[test]
    fn scopes_must_be_literals() {
        assert_eq!(
            error(quote!(SCOPE), handler()),
            "expected a scope string literal"
        );
        assert_eq!(
            error(quote!(some("a")), handler()),
            "expected scope strings, `all(\"…\", …)` or `any(\"…\", …)`"
        );
    }

    #[test]
    fn methods_are_refused() {
        let method: ItemFn = syn::parse_quote! { async fn handler(&self) {} };
        assert!(error(quote!("a"), method).contains("not methods"));
    }

    #[test]
    fn every_scope_is_checked_by_the_library_rule() {
        let out = expand(quote!(any("items:read", "say\"hi\"")), handler())
            .unwrap()
            .to_string();
        assert_eq!(out.matches(":: tokengate :: is_scope_token").count(), 2);
        assert!(out.contains("is not an RFC 6749 §3.3 scope"));
        assert!(out.contains("const ANY : bool = true"));
    }
}
