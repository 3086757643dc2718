// demo_echo - stores the text it was given on the lead and sends it back.
// Schedule it with script_request_params {"text": "..."}.
var text = request.json.text;
lead.setAttr('echo', text);
bot.sendText('echo: ' + text);
return {echoed: text};
