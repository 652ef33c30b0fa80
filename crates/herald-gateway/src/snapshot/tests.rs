//! Unit tests of snapshot pages: order, paging, audiences, rendering, retention.

use super::*;
