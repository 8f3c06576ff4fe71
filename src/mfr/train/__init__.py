"""mfr.train"""
