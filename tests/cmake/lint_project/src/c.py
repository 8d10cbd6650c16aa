x = "c"
