// (placeholder: tests to come)
