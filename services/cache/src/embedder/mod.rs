//! Embedders: text to vectors, behind one trait.
