"""mfr.nets"""
