"""Built-in demo-report sections: every module here is imported by the report builder."""
