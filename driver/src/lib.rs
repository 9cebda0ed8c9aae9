//! Placeholder until the Windows shell lands.
#![no_std]
