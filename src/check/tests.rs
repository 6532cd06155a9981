//! Tests of the rules on captured inspect JSON and on models built by hand.
