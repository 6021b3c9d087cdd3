//! Evaluation protocols on features. `verification` holds the k-fold LFW metric and the
//! built-in LFW-style pair construction; `features` turns a network and images into features.
//! Nothing here knows about losses.

pub mod features;
pub mod verification;
