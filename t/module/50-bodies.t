# bodies: escaped unicode, large batches, bodies in temp files, bad JSON
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis;
# a small buffer so that big bodies go to a temporary file
$t->start_nginx(location => 'client_body_buffer_size 16k;');

# escaped unicode: BMP, a surrogate pair, an escaped slash and quote, NUL-free
my $body = '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":'
    . '[{"field":"messages","value":{"messaging_product":"whatsapp",'
    . '"metadata":{"display_phone_number":"1","phone_number_id":"2"},'
    . '"messages":[{"from":"3","id":"wamid.U1","timestamp":"1","type":"text",'
    . '"text":{"body":"\u00e9\u4e2d \ud83d\ude00 \/ \"q\" \\\\ tab\t"}}]}}]}]}';
my $r = $t->post($body);
is $r->{status}, 200, 'escaped unicode: 200';
my ($e) = $t->stream_events('wa:messages');
is $e->{text}, "\xc3\xa9\xe4\xb8\xad \xf0\x9f\x98\x80 / \"q\" \\ tab\t",
    'text is the decoded UTF-8';
$t->redis('FLUSHALL');

# raw UTF-8 bytes (not escaped) go through as they are
$body = messages_body(messages => [ text_message('wamid.U2', 'x') ]);
$body =~ s/"x"/"\xc3\xa9\xf0\x9f\x98\x80"/;
$r = $t->post($body);
is $r->{status}, 200, 'raw UTF-8: 200';
($e) = $t->stream_events('wa:messages');
is $e->{text}, "\xc3\xa9\xf0\x9f\x98\x80", 'raw UTF-8 kept';
$t->redis('FLUSHALL');

# a batch of 1000 messages and 1000 statuses in one body
my @msgs = map { text_message("wamid.B$_", "m$_") } 1 .. 1000;
my @sts = map { WaBody::status_item("wamid.S$_", 'delivered') } 1 .. 1000;
$r = $t->post(messages_body(messages => \@msgs, statuses => \@sts));
is $r->{status}, 200, '2000-item batch: 200';
my @m = $t->stream_events('wa:messages');
my @s = $t->stream_events('wa:statuses');
is scalar @m, 1000, '1000 messages';
is scalar @s, 1000, '1000 statuses';
is_deeply [ map { $_->{msg_id} } @m ], [ map { "wamid.B$_" } 1 .. 1000 ],
    'messages in body order';
is_deeply [ map { $_->{event_id} } @s ],
    [ map { "wamid.S$_:delivered" } 1 .. 1000 ], 'statuses in body order';
$t->redis('FLUSHALL');

# a 3 MB body: nginx keeps it in a temp file
my $big = 'x' x 10_000;
@msgs = map { text_message("wamid.L$_", "$_ $big") } 1 .. 300;
$body = messages_body(messages => \@msgs);
cmp_ok length $body, '>', 3_000_000, '3 MB body';
$r = $t->post($body);
is $r->{status}, 200, '3 MB body: 200';
ok $t->wait_log(qr/buffered to a temporary file/), 'it went through a file';
@m = $t->stream_events('wa:messages');
is scalar @m, 300, '300 messages';
is scalar(grep { length $_->{text} == length("$_->{msg_id}") - 7 + 1
                 + 10_000 } @m), 300, 'every text whole';
$t->redis('FLUSHALL');

# too big for client_max_body_size: nginx refuses, nothing appended
$r = $t->post('{"a":"' . ('y' x 4_300_000) . '"}');
is $r->{status}, 413, 'over client_max_body_size: 413';

# authentic but not JSON: kept whole as unparsed, answered 200
my $junk = '{"object":"whatsapp_business_account","entry":[{';
$r = $t->post($junk);
is $r->{status}, 200, 'malformed JSON: 200';
my @a = $t->stream_events('wa:account');
is scalar @a, 1, 'one unparsed event';
is $a[0]{kind}, 'unparsed', 'kind unparsed';
is $a[0]{raw}, $junk, 'raw is the body, byte for byte';
like $a[0]{error} // '', qr/\S/, 'error says why';
ok $t->wait_log(qr/unparsed|not valid JSON|invalid JSON/i), 'logged';

# authentic JSON that is not a WhatsApp envelope
$r = $t->post('{"object":"page","entry":[]}');
is $r->{status}, 200, 'foreign envelope: 200';
$r = $t->post('[1,2,3]');
is $r->{status}, 200, 'JSON array: 200';
$r = $t->post('');
is $r->{status}, 200, 'empty body: 200';
@a = $t->stream_events('wa:account');
is scalar @a, 4, 'each kept as unparsed';
is scalar(grep { $_->{kind} eq 'unparsed' } @a), 4, 'all unparsed';

# the same junk twice is one event (its digest is its id)
$r = $t->post($junk);
is $r->{status}, 200, 'junk again: 200';
is $t->xlen('wa:account'), 4, 'deduped';

# unparsed pieces inside a good envelope are kept beside the good ones
$body = '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":'
    . '[7,{"field":"messages","value":{"messages":[{"from":"3",'
    . '"id":"wamid.P1","timestamp":"1","type":"text","text":{"body":"ok"}},'
    . '"bad"]}}]}]}';
$t->redis('FLUSHALL');
$r = $t->post($body);
is $r->{status}, 200, 'partly bad: 200';
is $t->xlen('wa:messages'), 1, 'the good message kept';
is $t->xlen('wa:account'), 2, 'the two bad pieces kept as unparsed';

my $c = $t->status_counters;
cmp_ok $c->{unparsed}, '>=', 6, 'unparsed counted';

# names the normalizer sets itself cannot be injected from nested objects:
# no entry holds a field name twice (read as pairs, not as a hash)
$t->redis('FLUSHALL');
$body = '{"object":"whatsapp_business_account","entry":[{"id":"9","time":7,'
    . '"changes":[{"field":"x","value":{"event":{"id":"X"},"waba":{"id":"Y"},'
    . '"phone":{"number_id":"Z"},"received":{"at":"1"},"kind":"K"}}]}]}';
is $t->post($body)->{status}, 200, 'nested common names: 200';
my $pairs = $t->redis('XRANGE', 'wa:account', '-', '+')->[0][1];
my %seen;
my @twice = grep { $seen{$_}++ } @{$pairs}[ grep { !($_ % 2) } 0 .. $#$pairs ];
is_deeply \@twice, [], 'no field name twice in the entry';
my %e = @$pairs;
like $e{event_id}, qr/^[0-9a-f]{32}$/, 'event_id is the digest';
is $e{waba_id}, '9', 'waba_id is the entry\'s';
is "@e{qw(value_event_id value_waba_id value_phone_number_id value_received_at value_kind)}",
    'X Y Z 1 K', 'the nested ones as value_<name>';

done_testing;
