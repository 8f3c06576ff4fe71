"""mfr.eval"""
