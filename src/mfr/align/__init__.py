"""mfr.align"""
