"""mfr.masking"""
