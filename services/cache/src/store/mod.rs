//! Vector stores: embedded Qdrant and a Qdrant server, behind one trait.
