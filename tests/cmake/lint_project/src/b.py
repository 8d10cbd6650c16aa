x = "b"
