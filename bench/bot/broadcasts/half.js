// half - W5's broadcast body, run for each lead that passes the condition: read one param, set one attribute.
lead.setAttr('b', request.getParam('n', 0));
