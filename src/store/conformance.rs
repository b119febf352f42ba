//! The behaviour every [`Store`](super::Store) backend must show. (Being written.)
