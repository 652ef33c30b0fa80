//! Unit tests of the mirror: live application, loading hand-off, cuts.

use super::*;
