// trivial - the benchmark's "real" job: read one parameter, set one lead attribute.
lead.setAttr('n', request.getParam('n', 0));
