//! Elasticsearch time values: `500ms`, `90s`, `20m`, `1h`, `2d`, and `-1` where allowed.
