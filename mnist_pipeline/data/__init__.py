"""Data: where raw datasets come from (sources), what valid data is (validation), and preparation for a model."""
