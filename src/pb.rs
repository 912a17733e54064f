//! The generated gRPC code for `proto/ballast/v1/*.proto`, and conversions between its
//! enums and the domain types in [`crate::model`].

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("ballast.v1");
